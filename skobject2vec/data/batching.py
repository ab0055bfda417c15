"""Ragged token sequences, padding, length bucketing and shuffling.

Sequences are stored flat (CSR style: one int64 ``values`` array plus
``offsets``) so that building a padded batch is a handful of vectorised numpy
operations, with no Python loop over records, and padding goes only to the
longest record of each batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import torch

if TYPE_CHECKING:
    import numpy.typing as npt


@dataclass
class Ragged:
    """A list of int64 sequences stored as ``values[offsets[i]:offsets[i + 1]]``."""

    values: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_dense(cls, array: np.ndarray) -> Ragged:
        array = np.ascontiguousarray(array, dtype=np.int64)
        n, d = array.shape
        return cls(array.reshape(-1), np.arange(0, n * d + 1, d, dtype=np.int64))

    @classmethod
    def from_lists(cls, sequences: Sequence[Sequence[int]]) -> Ragged:
        """From already validated sequences of ints."""
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.fromiter((t for s in sequences for t in s), dtype=np.int64, count=int(offsets[-1]))
        return cls(values, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def max_id(self) -> int:
        return int(self.values.max()) if self.values.size else -1

    def take(self, index: npt.ArrayLike) -> Ragged:
        index = np.asarray(index, dtype=np.int64)
        starts = self.offsets[index]
        lengths = self.offsets[index + 1] - starts
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return Ragged(self._gather(starts, lengths, offsets), offsets)

    def _gather(self, starts: np.ndarray, lengths: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """The first ``lengths`` tokens of the records starting at ``starts``, one after another
        (``offsets``: their cumulative lengths from 0): each output token's position in ``values``
        is its record's start plus its place in the record."""
        gathered: np.ndarray = self.values[np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])]
        return gathered

    def row(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    def _scatter(self, starts: np.ndarray, lengths: np.ndarray, width: int, total: int,
                 unknown_id: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`pad` of a batch mostly padding (an id with a long-tailed context: a user and the
        items the user rated), in passes over its tokens rather than over the padded matrix: 2.8 ms ->
        1.0 ms for 256 MovieLens users with every item they rated (116,000 ids, padded to about 2,000).
        Where records fill most of the matrix, the masked gather of :meth:`pad` is faster (by 10-15 us)."""
        ids = np.zeros((len(starts), width), dtype=np.int64)
        within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # each token's position
        values = self.values[np.repeat(starts, lengths) + within]
        if unknown_id is not None:
            np.minimum(values, unknown_id, out=values)
        ids.reshape(-1)[np.repeat(np.arange(len(starts)) * width, lengths) + within] = values
        return torch.from_numpy(ids), torch.from_numpy(lengths)

    def tokens(self, index: npt.ArrayLike, max_len: int,
               unknown_id: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens of records ``index`` one after another (total,), and their lengths (B,):
        :meth:`pad`'s valid ids in the same order, with no padded matrix (for encoders that pool each
        record's tokens alone, ``Object2VecNet.flat_sides``). Truncation and unknown ids as in :meth:`pad`."""
        index = np.asarray(index, dtype=np.int64)
        starts = self.offsets[index]
        lengths = np.minimum(self.offsets[index + 1] - starts, max_len)
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = self._gather(starts, lengths, offsets)
        if unknown_id is not None:
            np.minimum(values, unknown_id, out=values)
        return torch.from_numpy(values), torch.from_numpy(lengths)

    def to_lists(self) -> list[list[int]]:
        return [self.row(i).tolist() for i in range(len(self))]

    def pad(self, index: npt.ArrayLike, max_len: int,
            unknown_id: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids (B, L) and lengths (B,) for records ``index``, truncated to ``max_len``.

        ``L`` is the longest (truncated) record of this batch. Ids ``>= unknown_id``
        become ``unknown_id`` (the table's unknown-token row). Padding positions hold 0
        and are masked by the network, so their value never matters.
        """
        index = np.asarray(index, dtype=np.int64)
        starts = self.offsets[index]
        # lengths of these records only: self.lengths would diff all n offsets every batch
        lengths = np.minimum(self.offsets[index + 1] - starts, max_len)
        width = int(lengths.max()) if len(lengths) else 1
        total = int(lengths.sum())
        if total == len(index) and width == 1:  # one token per record (user, item): no padding to build
            ids = self.values[starts].reshape(-1, 1)
            if unknown_id is not None:
                np.minimum(ids, unknown_id, out=ids)
            return torch.from_numpy(ids), torch.from_numpy(lengths)
        if len(index) * width > 2 * total:
            return self._scatter(starts, lengths, width, total, unknown_id)
        positions = np.arange(width, dtype=np.int64)
        valid = positions[None, :] < lengths[:, None]
        gather = np.where(valid, starts[:, None] + positions[None, :], 0)
        ids = np.where(valid, self.values[gather] if self.values.size else 0, 0)
        if unknown_id is not None:
            np.minimum(ids, unknown_id, out=ids)
        return torch.from_numpy(ids), torch.from_numpy(lengths)


@dataclass
class PairData:
    """Validated pairs: ``in0``/``in1`` (either may be None for single-side data)."""

    in0: Ragged | None
    in1: Ragged | None

    def __len__(self) -> int:
        return len(cast(Ragged, self.in0 if self.in0 is not None else self.in1))  # at least one side is given

    def take(self, index: npt.ArrayLike) -> PairData:
        return PairData(None if self.in0 is None else self.in0.take(index),
                        None if self.in1 is None else self.in1.take(index))


def batch_indices(n: int, batch_size: int, *, shuffle: bool = False, rng: np.random.Generator | None = None,
                  lengths: np.ndarray | None = None, bucket_width: int = 0) -> list[np.ndarray]:
    """Split ``range(n)`` into mini-batches.

    With ``bucket_width > 0`` and ``lengths`` given, records are sorted by length
    (ties and order broken randomly when shuffling) and cut into batches, then a
    batch is closed early when its lengths would span more than ``bucket_width``.
    The order of the batches is shuffled, so training still sees a random order,
    and every choice comes from ``rng``: deterministic under one seed.
    """
    if n == 0:
        return []
    # a shuffling caller passes its rng
    order = cast(np.random.Generator, rng).permutation(n) if shuffle else np.arange(n)
    if bucket_width > 0 and lengths is not None:
        keyed = lengths[order]
        order = order[np.argsort(keyed, kind="stable")]
        sorted_lengths = lengths[order]
        batches, start = [], 0
        while start < n:
            stop = min(start + batch_size, n)
            limit = sorted_lengths[start] + bucket_width
            stop = start + int(np.searchsorted(sorted_lengths[start:stop], limit, side="right"))
            batches.append(order[start:stop])
            start = stop
        if shuffle:
            batches = [batches[i] for i in cast(np.random.Generator, rng).permutation(len(batches))]
        return batches
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def inference_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Batches of records of similar length (sorted), so little padding is computed.

    Results do not depend on batch composition (padding is masked), so sorting is
    only a speed-up; callers scatter outputs back by index.
    """
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@dataclass
class Batcher:
    """Turns record indices into padded tensors on the training device."""

    max_lens: tuple[int, int]
    unknown_ids: tuple[int, int]
    device: torch.device

    def side(self, ragged: Ragged, index: npt.ArrayLike, side: int, flat: bool = False
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids (B, L) and lengths (B,); with ``flat``, the valid ids one after another
        (:meth:`Ragged.tokens`) for a side whose encoder pools them alone (``Object2VecNet.flat_sides``)."""
        ids, lengths = (ragged.tokens if flat else ragged.pad)(index, self.max_lens[side], self.unknown_ids[side])
        return ids.to(self.device, non_blocking=True), lengths

    def pair(self, pairs: PairData, left: npt.ArrayLike, right: npt.ArrayLike | None = None,
             flat: tuple[bool, bool] = (False, False)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        right = left if right is None else right
        assert pairs.in0 is not None and pairs.in1 is not None  # pairs to train on or to score: both sides
        return (*self.side(pairs.in0, left, 0, flat[0]), *self.side(pairs.in1, right, 1, flat[1]))
