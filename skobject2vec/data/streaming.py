"""Training records streamed from JSON Lines files that need not fit in memory.

A source is one JSON Lines file or a folder of shards (``*.jsonl``/``*.json``,
plain or ``.gz``, read in sorted name order). Nothing here holds more than
``buffer_size`` records (plus one chunk) at a time:

1. :func:`rank_records` reads a rank's share of the records: record ``i`` of a
   single file goes to rank ``i % world_size``; a folder with at least
   ``world_size`` shards gives every rank whole shards (``shards[rank::world_size]``).
2. :func:`shuffle_buffer` shuffles the stream with a bounded buffer (the classic
   streaming shuffle: every record comes out exactly once per pass).
3. :func:`chunks` groups the shuffled stream into small :class:`~.batching.PairData`
   chunks, inside which mini-batches are cut with the in-memory code
   (:func:`~.batching.batch_indices`, so ``bucket_width`` works) and negatives
   pair an ``in0`` with the ``in1`` of other records of the chunk.

Vocabulary sizes, maximum lengths, the classes (or the target's mean and scale)
and record counts come from one cheap streaming pre-pass, :func:`scan`, which
parses the records once without training (O(1) memory). Given
``enc*_vocab_size``/``enc*_max_seq_len`` are checked against it, so a bad id
fails before training starts rather than in the middle of an epoch.

Every random choice comes from one ``numpy.random.Generator``, so a pass is
deterministic under ``random_state`` for a given number of ranks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TypeVar

import numpy as np

from .batching import PairData, Ragged
from .jsonlines import iter_records
from .records import paused_gc

__all__ = ["is_stream_source", "list_shards", "rank_records", "shuffle_buffer", "chunks", "scan", "StreamStats",
           "DEFAULT_BUFFER_SIZE"]

#: Records held for shuffling. About 1 KB each as Python objects: ~10 MB.
DEFAULT_BUFFER_SIZE = 10_000

#: Mini-batches per chunk: enough records for length bucketing to find similar lengths.
BATCHES_PER_CHUNK = 16

_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")

_T = TypeVar("_T")


def is_stream_source(X: object) -> bool:
    """True when ``X`` names a file or folder to stream rather than holding records."""
    return isinstance(X, (str, os.PathLike))


def list_shards(source: str | os.PathLike[str]) -> list[Path]:
    """The files of a source: ``[source]`` for a file, the sorted JSON Lines shards of a folder."""
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        shards = sorted(p for p in path.iterdir()
                        if p.is_file() and not p.name.startswith(".") and p.name.endswith(_SUFFIXES))
        if not shards:
            raise ValueError(f"{path}: no JSON Lines shards (*.jsonl, *.json, optionally .gz) in this folder.")
        return shards
    raise FileNotFoundError(f"{path}: no such file or folder of JSON Lines records.")


def rank_records(shards: list[Path], *, label: str | None, rank: int = 0, world_size: int = 1
                 ) -> Iterator[tuple[dict[str, list[int]], object, str]]:
    """Yield ``(record, label, where)`` for the records of one rank, in file order.

    With at least ``world_size`` shards every rank reads whole shards
    (``shards[rank::world_size]``): no rank parses what it does not train on.
    Otherwise record ``i`` (counted across the shards) goes to rank ``i % world_size``.
    ``where`` is ``"file, record k"`` for error messages.
    """
    whole_shards = world_size > 1 and len(shards) >= world_size
    mine = shards[rank::world_size] if whole_shards else shards
    stride = 1 if whole_shards else world_size
    offset = 0 if whole_shards else rank
    position = 0
    for shard in mine:
        for number, (record, value) in enumerate(iter_records(shard, label=label), start=1):
            if (position - offset) % stride == 0:
                yield record, value, f"{shard}, record {number}"
            position += 1


def shuffle_buffer(items: Iterable[_T], buffer_size: int, rng: np.random.Generator) -> Iterator[_T]:
    """Shuffle a stream holding at most ``buffer_size`` items: each item is yielded exactly once.

    Once the buffer is full, every new item replaces a uniformly drawn buffered one,
    which is yielded; the rest come out in random order at the end.
    """
    buffer: list[_T] = []
    draws, used = np.empty(0, dtype=np.int64), 0
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        if used == len(draws):  # draw slots in blocks: one generator call per 4096 items
            draws, used = rng.integers(0, buffer_size, 4096), 0
        slot = draws[used]
        used += 1
        yield buffer[slot]
        buffer[slot] = item
    for slot in rng.permutation(len(buffer)):
        yield buffer[slot]


def chunks(items: Iterable[tuple[dict[str, list[int]], object, str]], size: int,
           encode_label: Callable[[np.ndarray], np.ndarray]) -> Iterator[tuple[PairData, np.ndarray]]:
    """Group ``(record, label, where)`` items into ``(PairData, targets)`` chunks of ``size`` records.

    ``encode_label`` maps the array of raw labels to training targets.
    """
    iterator = iter(items)
    while True:
        # The records are read, parsed and shuffled while a block is drawn: with the collector paused
        # (records.paused_gc; no cycles are built), not while the chunk trains. Running, it walked the
        # shuffle buffer's records again and again: half of a streamed epoch of 1,000,000 ratings.
        with paused_gc():
            block = list(islice(iterator, size))
            if not block:
                return
            pairs = PairData(Ragged.from_lists([r["in0"] for r, _, _ in block]),
                             Ragged.from_lists([r["in1"] for r, _, _ in block]))
            targets = encode_label(np.asarray([value for _, value, _ in block]))
        yield pairs, targets


def chunk_size(batch_size: int, buffer_size: int) -> int:
    """Records per chunk: a few mini-batches, never more than the shuffle buffer."""
    return max(batch_size, min(buffer_size, BATCHES_PER_CHUNK * batch_size))


#: Above any record's length: the shortest length seen before the first record.
MAX_RECORD_LEN = 2**31 - 1


@dataclass
class StreamStats:
    """What one pass over a rank's records found (summed/maxed across ranks by the caller)."""

    n_records: int = 0
    max_ids: list[int] = field(default_factory=lambda: [-1, -1])
    max_lens: list[int] = field(default_factory=lambda: [0, 0])
    min_lens: list[int] = field(default_factory=lambda: [MAX_RECORD_LEN, MAX_RECORD_LEN])
    tokens: list[int] = field(default_factory=lambda: [0, 0])  # per side, summed over the records
    max_id_where: list[str] = field(default_factory=lambda: ["", ""])
    global_max_ids: list[int] = field(default_factory=lambda: [-1, -1])  # across ranks (max_ids: this rank's)
    label_counts: dict[int, int] = field(default_factory=dict)  # classification: label -> count
    label_sum: float = 0.0  # regression
    label_sum_sq: float = 0.0


def scan(shards: list[Path], *, label: str, rank: int = 0, world_size: int = 1) -> StreamStats:
    """The pre-pass: record count, largest id, lengths and token count per side, labels seen.

    Validates every record (bad JSON or ids fail here, naming file and record),
    holding one block of records (:data:`_SCAN_BLOCK`) at a time.
    """
    stats = StreamStats()
    records = rank_records(shards, label=label, rank=rank, world_size=world_size)
    while True:
        # a block at a time, with the collector paused (see chunks), each statistic by one C-level map
        with paused_gc():
            block = list(islice(records, _SCAN_BLOCK))
        if not block:
            return stats
        stats.n_records += len(block)
        for side, key in enumerate(("in0", "in1")):
            sequences = [record[key] for record, _, _ in block]
            tops = list(map(max, sequences))
            top = max(tops)
            if top > stats.max_ids[side]:  # the first record holding it, as one record at a time found it
                stats.max_ids[side], stats.max_id_where[side] = int(top), block[tops.index(top)][2]
            lengths = list(map(len, sequences))
            stats.max_lens[side] = max(stats.max_lens[side], *lengths)
            stats.min_lens[side] = min(stats.min_lens[side], *lengths)
            stats.tokens[side] += sum(lengths)
        if label == "classification":
            for _, value, _ in block:
                assert isinstance(value, int)  # _check_label's classification label
                stats.label_counts[value] = stats.label_counts.get(value, 0) + 1
        else:
            label_sum, label_sum_sq = stats.label_sum, stats.label_sum_sq
            for _, value, _ in block:  # one record at a time, in order: the same sums to the last bit
                assert isinstance(value, float)  # _check_label's regression label
                label_sum += value
                label_sum_sq += value * value
            stats.label_sum, stats.label_sum_sq = label_sum, label_sum_sq


#: Records per block of the pre-pass.
_SCAN_BLOCK = 4096
