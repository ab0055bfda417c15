"""Streamed and data-parallel (torchrun) training.

* :func:`fit_stream` trains an estimator from a JSON Lines file or a folder of
  shards without loading it (``estimator.fit(path)`` calls it). Launched under
  ``torchrun`` it trains with :class:`~torch.nn.parallel.DistributedDataParallel`
  (gloo on CPU, nccl on GPU): every rank reads its own share of the records, the
  gradients are averaged, metrics are summed across ranks and early stopping is
  decided on the all-reduced validation loss, so every rank stops together.

``mini_batch_size`` is the global batch, as on a multi-GPU SageMaker job: N ranks
split it (:func:`rank_batch_size`), so 1 and N processes take the same number of
steps on batches of the same size and train the same model up to floating-point
noise and the order in which records meet.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from .. import _fit as plan_fit
from .. import training
from ..callbacks import resolve_callbacks
from ..data.streaming import (
    DEFAULT_BUFFER_SIZE,
    StreamStats,
    chunk_size,
    chunks,
    is_stream_source,
    list_shards,
    rank_records,
    scan,
    shuffle_buffer,
)
from ..devices import resolve_device
from ..fitted import FitResult, apply_result, fitted_state_restored_on_error
from ..hyperparameters import validate_params
from ..inference import INFERENCE_BATCH_SIZE, task_of

__all__ = ["fit_stream", "train_stream", "is_main_process", "rank_batch_size"]

logger = logging.getLogger("skobject2vec")

#: Records per chunk when evaluating a streamed validation set.
_EVAL_CHUNK = 8 * INFERENCE_BATCH_SIZE
#: Streamed classification labels are ids 0..k-1 (SageMaker); this bounds the count vector.
_MAX_LABEL = 100_000


def is_main_process() -> bool:
    """True on rank 0 of a torchrun job, and in any process outside one: where to save and print."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


@dataclass
class _Ranks:
    """This process's place in the job, and the collectives training needs."""

    rank: int
    world_size: int
    device: torch.device
    backend: str | None = None
    owns_group: bool = False

    @classmethod
    def join(cls, device_param) -> _Ranks:
        """Join the torchrun job described by the environment (``WORLD_SIZE``, ``RANK``, ...), if any."""
        dist = torch.distributed
        device = resolve_device(device_param)
        initialized = dist.is_available() and dist.is_initialized()
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1 and not initialized:
            return cls(0, 1, device)
        if device.type == "cuda" and device.index is None:  # one GPU per process
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if device.type == "cuda":
            torch.cuda.set_device(device)
        owns = not initialized
        if owns:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        ranks = cls(dist.get_rank(), dist.get_world_size(), device, dist.get_backend(), owns)
        logger.info("data parallel: rank %d of %d, backend %s, device %s", ranks.rank, ranks.world_size,
                    ranks.backend, device)
        return ranks

    def wrap(self, net: torch.nn.Module) -> torch.nn.Module:
        """``net`` for the training step: DistributedDataParallel in a job of several ranks."""
        if self.world_size == 1:
            return net
        return DistributedDataParallel(net, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def leave(self):
        if self.owns_group:
            torch.distributed.destroy_process_group()

    def reduce(self, values, op: str = "sum") -> np.ndarray:
        """Element-wise sum (or max) of a small float64 array over the ranks."""
        values = np.asarray(values, dtype=np.float64)
        if self.world_size == 1:
            return values
        comm_device = self.device if self.backend == "nccl" else torch.device("cpu")
        tensor = torch.as_tensor(values, device=comm_device).clone()
        reduce_op = torch.distributed.ReduceOp.SUM if op == "sum" else torch.distributed.ReduceOp.MAX
        torch.distributed.all_reduce(tensor, op=reduce_op)
        return tensor.cpu().numpy()


def _reduced_scan(shards, label: str, ranks: _Ranks, what: str) -> StreamStats:
    """:func:`~.data.streaming.scan` of every rank's share, combined across ranks."""
    stats = scan(shards, label=label, rank=ranks.rank, world_size=ranks.world_size)
    total = ranks.reduce([stats.n_records, stats.label_sum, stats.label_sum_sq, *stats.tokens])
    if ranks.reduce([stats.n_records == 0], "max")[0]:
        raise ValueError(f"{what}: no records for rank {ranks.rank} of {ranks.world_size}; give the job at most "
                         f"as many ranks as records (or shards).")
    # the shortest lengths ride along as negated maxima
    maxima = ranks.reduce(stats.max_ids + stats.max_lens + [-n for n in stats.min_lens]
                          + [max(stats.label_counts, default=0)], "max")
    stats.n_records, stats.label_sum, stats.label_sum_sq = int(total[0]), float(total[1]), float(total[2])
    stats.tokens = [int(v) for v in total[3:5]]
    stats.max_lens = [int(v) for v in maxima[2:4]]
    stats.min_lens = [-int(v) for v in maxima[4:6]]
    # max_ids stay per rank (with where they occur) for the vocabulary check; their max is kept apart.
    stats.global_max_ids = [int(v) for v in maxima[0:2]]
    if label == "classification":
        top = int(maxima[6])
        if top > _MAX_LABEL:
            raise ValueError(f"{what}: label {top} is too large; classification labels are class ids "
                             f"0..num_classes-1.")
        counts = np.zeros(top + 1)
        for value, count in stats.label_counts.items():
            counts[value] = count
        stats.label_counts = {int(v): int(c) for v, c in enumerate(ranks.reduce(counts)) if c > 0}
    return stats


def _check_vocab(stats: StreamStats, sides, name: str):
    """Given vocabulary sizes must exceed every id; all ranks fail together (none waits in a collective)."""
    for side, s in enumerate(sides):
        top = stats.global_max_ids[side]
        if s.vocab_size is not None and top >= s.vocab_size:
            where = stats.max_id_where[side] if stats.max_ids[side] == top else "a record of another rank"
            raise ValueError(f"{name}: {where}, field 'in{side}': token id {top} is not less than "
                             f"vocab_size={s.vocab_size} (enc{side}_vocab_size).")


def _in_lockstep(batches, ranks: _Ranks):
    """Every rank takes the same number of steps (DDP all-reduces in every backward).

    Ranks rarely hold the same number of batches (shards differ, bucketing cuts
    differently). A rank that has run out repeats its last batch with zero weights:
    it adds nothing to the averaged gradient but takes part in the all-reduce, and
    all ranks apply the same averaged gradient, so their weights stay identical.
    (``torch.distributed.algorithms.Join`` would do this but fails with sparse gradients.)
    """
    last: tuple[Any, Any, torch.Tensor] | None
    iterator, last = iter(batches), None
    while True:
        item = next(iterator, None)
        if not ranks.reduce([item is not None], "max")[0]:
            return
        if item is None:
            # not None: _reduced_scan refuses a rank without records, so every rank has a first batch
            inputs, target, weight = cast("tuple[Any, Any, torch.Tensor]", last)
            item = (inputs, target, torch.zeros_like(weight))
        last = item
        yield item


def rank_batch_size(batch_size: int, rank: int, world_size: int) -> int:
    """This rank's share of the global ``mini_batch_size``: ``batch_size // world_size``,
    plus one record for the first ``batch_size % world_size`` ranks (the remainder).

    DDP averages the ranks' gradients, so equal shares give exactly the gradient of
    one process on the whole batch; a remainder weighs its rank's records slightly
    more (by at most one record in ``batch_size // world_size``).
    """
    if batch_size < world_size:
        raise ValueError(f"mini_batch_size={batch_size} is the global batch and is split across the "
                         f"{world_size} ranks; it must be at least the number of ranks.")
    return batch_size // world_size + (1 if rank < batch_size % world_size else 0)


def fit_stream(estimator, X, y=None, *, sample_weight=None, X_val=None, y_val=None, sample_weight_val=None,
               buffer_size: int = DEFAULT_BUFFER_SIZE):
    """Fit ``estimator`` on records streamed from a JSON Lines file or a folder of shards.

    ``estimator.fit(path)`` calls this. Memory holds the shuffle buffer and one
    chunk, whatever the size of the data. Under torchrun (``WORLD_SIZE`` > 1) the
    fit is data parallel; every rank returns the same fitted estimator, and only
    :func:`is_main_process` should save it. A fit that fails leaves the
    estimator's previous fitted state as it was.

    Parameters
    ----------
    estimator : Object2VecClassifier or Object2VecRegressor
        The estimator to fit (its parameters say what to train).
    X : str or Path
        JSON Lines records with a ``label`` field; plain or gzip; a folder is read
        as its ``*.jsonl``/``*.json`` (``.gz``) shards in name order.
    y, sample_weight, y_val, sample_weight_val : None
        Must be None: labels are read from the records, and records weigh 1.
    X_val : str or Path, optional
        Validation records (same format), streamed for the validation metrics and
        early stopping.
    buffer_size : int, default=10000
        Records held for shuffling; also bounds negative sampling and length
        bucketing, which work within chunks drawn from this buffer.

    Returns
    -------
    estimator
        Fitted. Vocabulary sizes, maximum lengths and the classes (or the target's
        mean and scale) come from one streaming pre-pass over ``X``.
    """
    name = type(estimator).__name__
    if y is not None or sample_weight is not None or y_val is not None or sample_weight_val is not None:
        raise ValueError(f"{name}.fit(path): labels are read from each record's 'label' field and records weigh "
                         f"1; pass y=None, y_val=None and no sample weights.")
    if X_val is not None and not is_stream_source(X_val):
        raise ValueError(f"{name}.fit(path): X_val must be a path to JSON Lines records too, got "
                         f"{type(X_val).__name__}.")
    if int(buffer_size) < 1:
        raise ValueError(f"buffer_size must be a positive number of records, got {buffer_size!r}.")
    params = estimator.get_params(deep=False)
    with fitted_state_restored_on_error(estimator):
        result = train_stream(task_of(estimator), validate_params(params), X, X_val, name=name,
                              device=params["device"], random_state=params["random_state"],
                              callbacks=params["callbacks"], buffer_size=int(buffer_size))
        return apply_result(estimator, result, from_records=True)


def train_stream(task: str, p: dict, X, X_val=None, *, name: str, device, random_state, callbacks=None,
                 buffer_size: int = DEFAULT_BUFFER_SIZE) -> FitResult:
    """Plan, build and train from streamed records (the body of :func:`fit_stream`); nothing is set on an estimator."""
    if p["validation_fraction"] not in (None, 0, "auto"):
        raise ValueError(f"{name}.fit(path): validation_fraction needs in-memory data; pass X_val=<path to "
                         f"validation records> instead.")
    shards = list_shards(X)
    val_shards = list_shards(X_val) if X_val is not None else None
    ranks = _Ranks.join(device)
    try:
        stats = _reduced_scan(shards, task, ranks, str(X))
        targets = plan_fit.targets_from_counts(task, p, label_counts=stats.label_counts, n=stats.n_records,
                                               label_sum=stats.label_sum, label_sum_sq=stats.label_sum_sq)
        summary = plan_fit.DataSummary(stats.n_records, cast("tuple[int, int]", tuple(int(n) for n in stats.max_lens)),
                                       cast("tuple[int, int]", tuple(stats.global_max_ids)), streamed=True,
                                       min_lens=cast("tuple[int, int]", tuple(int(n) for n in stats.min_lens)),
                                       mean_lens=(stats.tokens[0] / stats.n_records, stats.tokens[1] / stats.n_records))
        plan = plan_fit.make_plan(task, p, summary, targets, random_state=random_state, name=name)
        _check_vocab(stats, plan.sides, name)
        if plan.config["sparse"] and ranks.backend == "nccl":
            message = ("token_embedding_storage_type='row_sparse': NCCL cannot all-reduce sparse gradients, "
                       "so this data-parallel fit uses dense token gradients.")
            logger.warning(message)
            warnings.warn(message, UserWarning)
            plan = dataclasses.replace(plan, config=plan.config | {"sparse": False})
        if ranks.world_size > 1:
            plan = dataclasses.replace(plan, settings=dataclasses.replace(
                plan.settings, batch_size=rank_batch_size(plan.settings.batch_size, ranks.rank, ranks.world_size)))
        source = _StreamedSource(shards, val_shards, task, targets, plan.params["negative_sampling_rate"], ranks,
                                 buffer_size)
        net, history = plan_fit.run(plan, source, device=ranks.device,
                                    callbacks=resolve_callbacks(callbacks, plan.settings), ranks=ranks)
    finally:
        ranks.leave()
    return FitResult(net, plan.vocab_sizes, plan.max_lens, history, targets, n_records=stats.n_records)


@dataclasses.dataclass(frozen=True)
class _StreamedSource:
    """Records streamed from JSON Lines shards, this rank's share (the runner's source, see
    :func:`skobject2vec._fit.run`): shuffled through a buffer, batched in chunks."""

    shards: list
    val_shards: list | None
    task: str
    targets: object
    negative_sampling_rate: float
    ranks: _Ranks
    buffer_size: int

    def epoch_batches(self, batcher, settings, rng, dtype):
        size = chunk_size(settings.batch_size, self.buffer_size)
        negatives = (self.negative_sampling_rate, self.targets.negative_index)
        ranks = self.ranks

        def batches(epoch):
            records = shuffle_buffer(rank_records(self.shards, label=self.task, rank=ranks.rank,
                                                  world_size=ranks.world_size), self.buffer_size, rng)
            out = _chunk_batches(chunks(records, size, self.targets.transform), negatives, epoch, batcher,
                                 settings, rng, dtype)
            return out if ranks.world_size == 1 else _in_lockstep(out, ranks)
        return batches

    def validator(self, net, batcher, settings, dtype):
        if self.val_shards is None:
            return None
        ranks = self.ranks

        def validate():
            sums = np.zeros(3)
            records = rank_records(self.val_shards, label=self.task, rank=ranks.rank, world_size=ranks.world_size)
            for pairs, val_targets in chunks(records, _EVAL_CHUNK, self.targets.transform):
                index = np.arange(len(val_targets))
                data = training.EpochData(index, index, val_targets, np.ones(len(val_targets)))
                sums += training.evaluation_sums(
                    net, training.evaluation_batches(pairs, data, batcher, settings.task, dtype), settings)
            return training.evaluation_scores(ranks.reduce(sums), settings)
        return validate


def _chunk_batches(chunk_iter, negatives, epoch, batcher, settings, rng, dtype):
    """Mini-batches of streamed chunks: in-memory batching, bucketing and negatives within each chunk."""
    rate, negative_index = negatives
    for pairs, targets in chunk_iter:
        n = len(targets)
        index = np.arange(n)
        make_data = plan_fit.epoch_data_factory(index, targets, np.ones(n), rate, negative_index)
        data = make_data(epoch, rng) if n >= 2 else training.EpochData(index, index, targets, np.ones(n))
        yield from training.training_batches(pairs, data, batcher, settings, rng=rng, dtype=dtype)
