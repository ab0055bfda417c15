"""The training loop, shared by in-memory, streamed and data-parallel fits (and so by the CLI).

A training set is described by index arrays rather than copies: record ``i`` of
an epoch pairs ``in0[left[i]]`` with ``in1[right[i]]``. Plain data has
``left == right``; negative sampling only appends new index pairs. So a batch is
padded straight from the stored sequences, to that batch's longest record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from .callbacks import Callback, resolve_callbacks
from .data.batching import Batcher, PairData, batch_indices, inference_batches
from .hyperparameters import SPARSE_OPTIMIZERS
from .inference import INFERENCE_BATCH_SIZE
from .optim import SGD, Adadelta, Adagrad, Adam, RMSprop, RowSparseAdagrad, RowSparseAdam, put_rows, same_rows
from .threads import torch_threads

if TYPE_CHECKING:
    from typing import TypeAlias

    import numpy.typing as npt

    from .nn.model import Object2VecNet

    #: One mini-batch: ``((ids0, lengths0, ids1, lengths1), target, weight)``.
    Batch: TypeAlias = tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor, torch.Tensor]

logger = logging.getLogger("skobject2vec")

@dataclass
class EpochData:
    """One epoch's training records as index pairs into the stored sequences."""

    left: np.ndarray
    right: np.ndarray
    target: np.ndarray
    weight: np.ndarray


@dataclass
class TrainSettings:
    task: str  # "classification" or "regression"
    epochs: int
    batch_size: int
    optimizer: str
    learning_rate: float
    weight_decay: float
    patience: int
    tolerance: float
    bucket_width: int = 0
    verbose: int = 0
    target_scale: float = 1.0  # regression: losses are reported in the user's units
    embedding_l2: float = 0.0  # L2 on the token rows each batch uses (see Object2VecNet.forward)
    learning_rate_decay: float = 1.0  # per-epoch factor (the default "lr_scheduler" callback); 1: constant
    n_threads: int | None = None  # intra-op torch threads while the loop runs (None: torch's setting)


def _fused(name: str, params: Sequence[torch.Tensor]) -> dict[str, Any]:
    """Fused Adam/SGD (one kernel for all parameters, CPU and CUDA) and, on CPU, fused Adagrad:
    on CPU the default multi-tensor Adam step over a 50,000-row token table costs several
    times the forward and backward passes (benchmarks/bench_training.py); torch's own Adagrad
    step over a dense 30,000 x 128 table takes 23 ms, fused 2.4 ms, and over a MovieLens
    step's output layer 116 us, fused 68 us. (torch fuses Adagrad on CPU only.)"""
    if name in ("adam", "sgd") or (name == "adagrad" and all(p.device.type == "cpu" for p in params)):
        return {"fused": True}
    return {}


def make_optimizers(net: torch.nn.Module, name: str, lr: float, weight_decay: float,
                    sparse: bool) -> list[torch.optim.Optimizer]:
    """One optimizer, or (``sparse``) one for the sparse token tables plus one for the rest.

    Sparse token tables are updated row by row: a step touches only the rows its batch
    looked up (SparseAdam's lazy moments, Adagrad's and SGD's sparse paths), so its cost
    follows the batch, not the vocabulary. ``weight_decay`` acts on those rows lazily, as
    dense storage would have decayed them (the group's ``row_decay``): see
    :func:`catch_up_rows`, :func:`decay_touched_rows` and :func:`flush_row_decay`. The
    dense parameters (encoders, MLP) decay every step as before.
    """
    params = [p for p in net.parameters() if p.requires_grad]
    # torch's classes without their torch.compile guards (skobject2vec.optim.EagerSteps)
    dense_classes = {"adam": Adam, "adagrad": Adagrad, "adadelta": Adadelta, "sgd": SGD, "rmsprop": RMSprop}
    if not sparse:
        return [dense_classes[name](params, lr=lr, weight_decay=weight_decay, **_fused(name, params))]
    if name not in SPARSE_OPTIMIZERS:
        raise ValueError(
            f"token_embedding_storage_type='row_sparse' needs optimizer adam, adagrad or sgd (optimizers "
            f"with sparse updates); got optimizer={name!r}."
        )
    sparse_ids = {id(m.weight) for m in net.modules() if isinstance(m, torch.nn.Embedding) and m.sparse}
    sparse_params = [p for p in params if id(p) in sparse_ids]
    dense_params = [p for p in params if id(p) not in sparse_ids]
    optimizers: list[torch.optim.Optimizer] = []
    if sparse_params:
        sparse_cls = {"adam": RowSparseAdam, "adagrad": RowSparseAdagrad, "sgd": SGD}[name]
        # torch's sparse steps take no weight_decay: the group carries it for decay_touched_rows
        optimizers.append(sparse_cls([{"params": sparse_params, "row_decay": float(weight_decay)}], lr=lr))
    if dense_params:
        optimizers.append(dense_classes[name](dense_params, lr=lr, weight_decay=weight_decay,
                                              **_fused(name, dense_params)))
    return optimizers


#: What :func:`catch_up_rows` brought up to date in one step: per table (its ``id``), the rows and their values.
CaughtUp = dict[int, tuple[torch.Tensor, torch.Tensor]]

#: Rows per block when the flush decays a whole table: temporaries of a block stay in cache, where
#: whole-table temporaries (77 MB for 150,000 x 128 floats) cost page faults: 0.2 s of a 1.1 s epoch
#: at 150,000 ids, 0.05 s in blocks (the same arithmetic row by row, so the same floats).
FLUSH_BLOCK_ROWS = 4096


def _idle_decay_factor(adagrad: bool, lr: float, x: torch.Tensor, sums: torch.Tensor | None,
                       idle: torch.Tensor, decay: float) -> torch.Tensor:
    """Per row (a column), the factor by which ``idle`` dense decay steps shrink the rows ``x``.

    SGD: ``(1 - lr * wd) ** idle``, exactly; SparseAdam, whose idle steps move a row by
    about ``lr``, the same (an approximation). Adagrad: ``(1 - lr * wd / sqrt(g)) ** idle``
    with ``g`` the row's mean squared-gradient sum (``sums``: the rows' Adagrad sums, None
    before the first step) after one idle step, held constant over the rest: one factor per
    row, not per coordinate, so that the catch-up costs a few passes over the rows (the flush
    runs over whole tables once an epoch; a factor per coordinate made it a third of an epoch
    at 150,000 ids).
    """
    if not adagrad:
        return torch.pow(1 - lr * decay, idle)
    mean_square = x.square().mean(1, keepdim=True).mul_(decay * decay)
    if sums is not None:
        mean_square.add_(sums.mean(1, keepdim=True))
    # ** idle as exp(idle * log), clamped to [0, 1]: an idle step never flips a sign; the floor keeps 0 ** 0 at 1
    factor = mean_square.sqrt_().add_(1e-10).reciprocal_().mul_(-lr * decay).add_(1).clamp_(1e-30, 1)
    factor = factor.log_().mul_(idle).exp_()
    # a factor below 1e-12 is 0: rows shrunk that far would become subnormal floats, whose arithmetic is
    # ~100x slower on x86 (every later step touching them pays it)
    return factor.masked_fill_(factor < 1e-12, 0)


def _decay_block(opt: torch.optim.Optimizer, group: dict[str, Any], x: torch.Tensor, sums: torch.Tensor | None,
                 idle: torch.Tensor, decay: float) -> torch.Tensor | None:
    """Apply ``idle`` (per row, a column) dense decay steps to the rows ``x`` in place, in closed form;
    returns what Adagrad's squared sums of those rows grow by (the idle steps' ``(wd * x) ** 2``;
    None for other optimizers)."""
    adagrad = isinstance(opt, torch.optim.Adagrad)
    factor = _idle_decay_factor(adagrad, group["lr"], x, sums, idle, decay)
    x.mul_(factor)
    if sums is None:
        return None
    return x.square().mul_(factor.new_tensor(decay * decay) * idle)


def _squared_sums(opt: torch.optim.Optimizer, p: torch.Tensor) -> torch.Tensor | None:
    """Adagrad's squared-gradient sums of ``p`` (None: another optimizer, or before its first step)."""
    return opt.state[p].get("sum") if isinstance(opt, torch.optim.Adagrad) else None


def _catch_up(opt: torch.optim.Optimizer, group: dict[str, Any], p: torch.Tensor, rows: torch.Tensor,
              idle: torch.Tensor, decay: float, *, hold: bool = False) -> torch.Tensor:
    """Apply ``idle`` (per row, a column) dense decay steps to ``p[rows]``; Adagrad's squared sums
    grow by the idle steps' ``(wd * x) ** 2``. Returns the rows as they now are. With ``hold`` (on
    CPU), :class:`~skobject2vec.optim.RowSparseAdagrad` keeps the rows and their grown sums for its next step
    (:meth:`~skobject2vec.optim.RowSparseAdagrad.hold_rows`) instead of adding them to the table now."""
    with torch.no_grad():
        if isinstance(opt, RowSparseAdagrad):
            opt.release_rows(p)  # the table's sums up to date before they are read
        # index_select, not p[rows]: advanced indexing costs twice as much on (batch x width) rows
        x = p.index_select(0, rows)
        sums = _squared_sums(opt, p)
        sums_rows = None if sums is None else sums.index_select(0, rows)
        grown = _decay_block(opt, group, x, sums_rows, idle, decay)
        put_rows(p, rows, x)
        if grown is not None:
            assert sums is not None and sums_rows is not None
            if hold and isinstance(opt, RowSparseAdagrad) and p.device.type == "cpu":
                opt.hold_rows(p, rows, x, sums_rows.add_(grown))  # the same sum as index_add_: one rounding
            else:
                sums.index_add_(0, rows, grown)
        return x


def _catch_up_table(opt: torch.optim.Optimizer, group: dict[str, Any], p: torch.Tensor, idle: torch.Tensor,
                    decay: float) -> None:
    """:func:`_catch_up` over every row of ``p``, in place, in blocks of :data:`FLUSH_BLOCK_ROWS` rows."""
    sums = _squared_sums(opt, p)
    with torch.no_grad():
        for start in range(0, p.shape[0], FLUSH_BLOCK_ROWS):
            block = slice(start, start + FLUSH_BLOCK_ROWS)
            grown = _decay_block(opt, group, p[block], None if sums is None else sums[block], idle[block], decay)
            if grown is not None:
                assert sums is not None
                sums[block].add_(grown)


def _row_decay_groups(optimizers: Iterable[torch.optim.Optimizer]
                      ) -> Iterator[tuple[torch.optim.Optimizer, dict[str, Any], float, dict[int, torch.Tensor]]]:
    for opt in optimizers:
        for group in opt.param_groups:
            decay = group.get("row_decay", 0.0)
            if decay:
                yield opt, group, decay, group.setdefault("row_last_step", {})


def _last_seen(last_seen: dict[int, torch.Tensor], i: int, p: torch.Tensor) -> torch.Tensor:
    if i not in last_seen:
        last_seen[i] = torch.zeros(p.shape[0], dtype=torch.int64, device=p.device)
    return last_seen[i]


def catch_up_rows(optimizers: Iterable[torch.optim.Optimizer],
                  lookups: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> CaughtUp:
    """Lazy weight decay, part 1: before a step's forward pass, bring the rows it will read up to date.

    ``lookups``: ``(table weight, ids)`` pairs, the ids the step looks up in each table.
    A row last updated ``k`` steps ago gets the ``k - 1`` decay steps that dense storage
    would have applied to it while it sat idle, in closed form from its current value:
    SGD's ``(1 - lr * wd) ** (k - 1)`` (exact); Adagrad's ``(1 - lr * wd / sqrt(G)) ** (k - 1)``
    per coordinate, ``G`` its squared-gradient sum after the first idle step (held
    constant over the rest: an approximation; idle sums grow by ``wd**2 * x**2`` each);
    for Adam SGD's factor (an approximation). :func:`decay_touched_rows` then adds this
    step's own decay term, and :func:`flush_row_decay` brings every row up to date at the
    end of each epoch, so rows seen only at predict time shrink too.

    Returns the rows caught up, for :func:`decay_touched_rows`, which reads them instead of
    gathering them again.
    """
    caught_up: CaughtUp = {}
    for opt, group, decay, last_seen in _row_decay_groups(optimizers):
        step = group.get("row_step", 0) + 1  # the step about to run
        for i, p in enumerate(group["params"]):
            ids = [found.reshape(-1) for weight, found in lookups if weight is p]
            if not ids:
                continue
            rows = torch.unique((ids[0] if len(ids) == 1 else torch.cat(ids)).to(p.device))
            x = _bring_up_to_date(opt, group, p, rows, _last_seen(last_seen, i, p), step, decay, hold=True)
            caught_up[id(p)] = (rows, x)
    return caught_up


def _bring_up_to_date(opt: torch.optim.Optimizer, group: dict[str, Any], p: torch.Tensor, rows: torch.Tensor,
                      seen: torch.Tensor, step: int, decay: float, *, hold: bool = False) -> torch.Tensor:
    """Apply to ``p[rows]`` the decay steps they missed since ``seen`` (per row), and mark them seen at ``step``."""
    idle = (step - 1 - seen.index_select(0, rows)).to(p.dtype).unsqueeze(1)
    seen.index_fill_(0, rows, step)
    return _catch_up(opt, group, p, rows, idle, decay, hold=hold)


def catch_up_gradient_rows(optimizers: Iterable[torch.optim.Optimizer]) -> None:
    """Lazy weight decay under data parallelism, between ``backward()`` and ``step()``: the rows of the
    all-reduced gradient that this rank's batch did not read (another rank's batch touched them) are
    brought up to date as :func:`catch_up_rows` brought this rank's, so that every rank applies the
    same decay to the same rows and the ranks stay in sync."""
    for opt, group, decay, last_seen in _row_decay_groups(optimizers):
        step = group.get("row_step", 0) + 1
        for i, p in enumerate(group["params"]):
            if p.grad is None or not p.grad.is_sparse:
                continue
            p.grad = p.grad.coalesce()  # once: decay_touched_rows reads the same coalesced gradient
            rows = p.grad.indices()[0]
            seen = _last_seen(last_seen, i, p)
            rows = rows[seen[rows] < step]  # rows this rank's own batch read are already caught up
            _bring_up_to_date(opt, group, p, rows, seen, step, decay)


def decay_touched_rows(optimizers: Iterable[torch.optim.Optimizer], caught_up: CaughtUp | None = None) -> None:
    """Lazy weight decay, part 2: between ``backward()`` and ``step()``, this step's ``wd * row``
    added to the sparse gradient of every row it holds (coalesced: once per row), as with
    dense storage. ``caught_up``: what :func:`catch_up_rows` returned for this step (the rows'
    current values, read from there when the gradient holds the same rows)."""
    for _, group, decay, _ in _row_decay_groups(optimizers):
        group["row_step"] = group.get("row_step", 0) + 1
        for p in group["params"]:
            if p.grad is None or not p.grad.is_sparse:
                continue
            grad = p.grad.coalesce()
            rows = grad.indices()[0]
            known = (caught_up or {}).get(id(p))
            if known is not None and known[0].device.type == "cpu" and same_rows(known[0], rows):
                current = known[1]
            else:
                current = p.detach().index_select(0, rows)
            values = grad.values().add(current, alpha=decay)
            p.grad = torch.sparse_coo_tensor(grad.indices(), values, grad.shape, is_coalesced=True,
                                             check_invariants=False)


def flush_row_decay(optimizers: Iterable[torch.optim.Optimizer]) -> None:
    """Apply the pending idle decay of every sparse row (whole tables in place; once per epoch)."""
    for opt, group, decay, last_seen in _row_decay_groups(optimizers):
        if isinstance(opt, RowSparseAdagrad):
            opt.release_rows()  # sums held for a step that did not come (none after a step)
        step = group.get("row_step", 0)
        for i, p in enumerate(group["params"]):
            seen = _last_seen(last_seen, i, p)
            if bool((seen < step).any()):
                _catch_up_table(opt, group, p, (step - seen).to(p.dtype).unsqueeze(1), decay)
                seen.fill_(step)


def _loss(outputs: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, task: str) -> torch.Tensor:
    if task == "classification":
        per_record = F.cross_entropy(outputs, target, reduction="none")
    else:
        per_record = (outputs.squeeze(1) - target) ** 2
    return _weighted_mean(per_record, weight)


def _weighted_mean(per_record: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    # clamp: a batch of zero weights (sample_weight, or a data-parallel rank with no batch
    # left) gives 0 instead of nan; a positive sum is unchanged.
    return (per_record * weight).sum() / weight.sum().clamp_min(torch.finfo(weight.dtype).tiny)


def _to_tensors(data: EpochData, index: np.ndarray, task: str, dtype: torch.dtype,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    target = torch.from_numpy(data.target[index])
    target = target.long() if task == "classification" else target.to(dtype)
    weight = torch.from_numpy(data.weight[index]).to(dtype)
    return target.to(device, non_blocking=True), weight.to(device, non_blocking=True)


def evaluation_sums(net: torch.nn.Module, batches: Iterable[Batch], settings: TrainSettings) -> np.ndarray:
    """``[weighted loss sum, weight sum, weighted correct]`` over ``(inputs, target, weight)`` batches.

    Sums rather than means, so that chunks of a stream and data-parallel ranks add up.
    """
    net.eval()
    sums = np.zeros(3)
    with torch.inference_mode():
        for inputs, target, weight in batches:
            outputs = net(*inputs)
            batch_weight = float(weight.sum())
            sums[0] += float(_loss(outputs, target, weight, settings.task)) * batch_weight
            sums[1] += batch_weight
            if settings.task == "classification":
                sums[2] += float(((outputs.argmax(1) == target).to(weight.dtype) * weight).sum())
    return sums


def evaluation_scores(sums: np.ndarray, settings: TrainSettings) -> dict[str, float]:
    """Validation metrics (SageMaker's names, the user's units) from :func:`evaluation_sums`."""
    loss = float(sums[0] / sums[1])
    if settings.task == "classification":
        return {"cross_entropy": loss, "accuracy": float(sums[2] / sums[1])}
    return {"mean_squared_error": loss * settings.target_scale ** 2}


def evaluation_batches(pairs: PairData, data: EpochData, batcher: Batcher, task: str,
                       dtype: torch.dtype) -> Iterator[Batch]:
    """Held-out records as ``(inputs, target, weight)`` batches of similar lengths."""
    assert pairs.in0 is not None  # held-out pairs: both sides
    for index in inference_batches(pairs.in0.lengths[data.left], INFERENCE_BATCH_SIZE):
        yield (batcher.pair(pairs, data.left[index], data.right[index]),
               *_to_tensors(data, index, task, dtype, batcher.device))


def evaluate(net: torch.nn.Module, pairs: PairData, data: EpochData, batcher: Batcher, settings: TrainSettings,
             dtype: torch.dtype) -> dict[str, float]:
    """Weighted loss (and accuracy) on held-out records, in the user's units."""
    batches = evaluation_batches(pairs, data, batcher, settings.task, dtype)
    return evaluation_scores(evaluation_sums(net, batches, settings), settings)


class _Batches:
    """A sized iterable of mini-batches, so that progress bars know the epoch's length;
    ``describe(k)`` names the records of batch ``k`` (for the divergence error)."""

    def __init__(self, indices: Sequence[np.ndarray], make_batch: Callable[[np.ndarray], Batch],
                 describe: Callable[[int], str] | None = None) -> None:
        self.indices, self.make_batch = indices, make_batch
        self.describe = describe or (lambda k: "")

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[Batch]:
        return (self.make_batch(index) for index in self.indices)


def training_batches(pairs: PairData, data: EpochData, batcher: Batcher, settings: TrainSettings, *,
                     rng: np.random.Generator, dtype: torch.dtype) -> _Batches:
    """Shuffled (and with ``bucket_width``, length-bucketed) ``(inputs, target, weight)`` mini-batches."""
    lengths = None
    if settings.bucket_width > 0:
        assert pairs.in0 is not None and pairs.in1 is not None  # training pairs: both sides
        lengths = np.maximum(pairs.in0.lengths[data.left], pairs.in1.lengths[data.right])
    indices = batch_indices(len(data.left), settings.batch_size, shuffle=True, rng=rng,
                            lengths=lengths, bucket_width=settings.bucket_width)
    return _Batches(indices, lambda index: (batcher.pair(pairs, data.left[index], data.right[index]),
                                            *_to_tensors(data, index, settings.task, dtype, batcher.device)),
                    describe=lambda k: describe_records(data, indices[k], settings.task))


def describe_records(data: EpochData, index: npt.ArrayLike, task: str, shown: int = 8) -> str:
    """Which records a batch held, and the most extreme target and weight among them."""
    index = np.sort(np.asarray(index))
    positives = index[data.left[index] == data.right[index]]
    records = ", ".join(str(int(r)) for r in data.left[positives][:shown])
    more = f" and {len(positives) - shown} more" if len(positives) > shown else ""
    text = f" It held records {records}{more}" if len(positives) else " It held"
    if len(positives) < len(index):
        text += f"{',' if len(positives) else ''} {len(index) - len(positives)} sampled negative pairs"
    heaviest = index[int(np.argmax(data.weight[index]))]
    text += f". Largest sample weight in it: record {int(data.left[heaviest])} (relative weight " \
            f"{float(data.weight[heaviest]):.3g} of the largest in the data)"
    if task == "regression":
        extreme = index[int(np.argmax(np.abs(data.target[index])))]
        text += f"; largest standardised target: record {int(data.left[extreme])} " \
                f"(|y - mean| / std = {abs(float(data.target[extreme])):.3g})"
    return text + "."


def _identity(values: np.ndarray) -> np.ndarray:
    return values


@dataclass
class Loop:
    """The state of a running fit that callbacks see and may change (``stop``)."""

    net: torch.nn.Module
    optimizers: list[torch.optim.Optimizer]
    settings: TrainSettings
    metric: str  #: the loss's SageMaker name: "cross_entropy" or "mean_squared_error"
    main_process: bool = True
    history: list[dict[str, Any]] = field(default_factory=list)
    stop: bool = False
    #: ``() -> validation scores`` of the network as it is (None without validation data; every rank calls it)
    validate: Callable[[], dict[str, float]] | None = None
    #: The epoch whose weights the network holds when a callback loaded an earlier epoch's (early stopping's
    #: best); None: the last epoch trained
    weights_epoch: int | None = None


def drop_gradients(optimizers: Iterable[torch.optim.Optimizer]) -> None:
    """``zero_grad(set_to_none=True)`` of each optimizer, without its profiler scope: torch opens a
    ``record_function`` per call, 30 us, which was 4-7 % of an Adam epoch on MovieLens ratings."""
    for opt in optimizers:
        for group in opt.param_groups:
            for p in group["params"]:
                p.grad = None


def _run_batches(loop: Loop, batches: Iterable[Batch], callbacks: Sequence[Callback],
                 embedding_l2: float) -> tuple[float, float, int | None]:
    """One epoch's optimisation steps; the weighted loss sum and weight sum (floats)."""
    task = loop.settings.task
    # Running sums stay on the device: no host synchronisation per step unless a bar shows them.
    running: torch.Tensor | float | None
    seen: torch.Tensor | float | None
    running = seen = None
    show = any(type(c).on_batch_end is not Callback.on_batch_end for c in callbacks)
    lazy_decay = any(_row_decay_groups(loop.optimizers))
    # torchrun trains a DistributedDataParallel wrapper: the token tables belong to the network inside it
    tables = cast("Object2VecNet", getattr(loop.net, "module", loop.net))
    # Steps after which the running sum was still finite, counted on the device (no host synchronisation,
    # no per-step tensor kept): a loss that turns NaN or infinite keeps the sum so, so the count is the index
    # of the first batch whose loss was not finite, which a divergence error names.
    finite_steps: torch.Tensor | None = None
    for inputs, target, weight in batches:
        drop_gradients(loop.optimizers)
        caught_up = None
        if lazy_decay:
            caught_up = catch_up_rows(loop.optimizers, [(tables.token_table(0).weight, inputs[0]),
                                                        (tables.token_table(1).weight, inputs[2])])
        if embedding_l2 > 0:
            outputs, penalty = loop.net(*inputs, with_row_penalty=True)
            loss = _loss(outputs, target, weight, task)
            objective = loss + embedding_l2 * _weighted_mean(penalty, weight)
        else:
            loss = objective = _loss(loop.net(*inputs), target, weight, task)
        objective.backward()
        if lazy_decay and tables is not loop.net:  # data parallel: the gradient holds other ranks' rows too
            catch_up_gradient_rows(loop.optimizers)
        decay_touched_rows(loop.optimizers, caught_up)
        for opt in loop.optimizers:
            opt.step()
        batch_weight = weight.detach().sum()
        weighted = loss.detach() * batch_weight
        running = weighted if running is None else running + weighted
        finite = torch.isfinite(running)
        finite_steps = finite.to(torch.int64) if finite_steps is None else finite_steps.add_(finite)
        seen = batch_weight if seen is None else seen + batch_weight
        if show:
            mean = float(running) / max(float(seen), 1e-12) if loop.settings.verbose else None
            for c in callbacks:
                c.on_batch_end(loop, mean)
    if running is None:
        return 0.0, 0.0, None
    assert seen is not None  # summed alongside running
    running, seen = float(running), float(seen)
    first_bad = None
    if not np.isfinite(running) and finite_steps is not None:
        first_bad = int(finite_steps)
    return running, seen, first_bad


def _divergence_message(epoch: int, loss: float, first_bad: int | None, batches: object, settings: TrainSettings,
                        dtype: torch.dtype) -> str:
    where = ""
    if first_bad is not None:
        where = f" The loss first became non-finite at batch {first_bad + 1} of the epoch."
        if hasattr(batches, "describe"):
            where += batches.describe(first_bad)
    return (f"Training diverged: the training loss of epoch {epoch} is {loss} (not finite).{where} "
            f"Targets are standardised and sample weights divided by their largest before training, so "
            f"unless one record above stands out, the cause is a learning_rate too large for the data "
            f"(learning_rate={settings.learning_rate}, optimizer={settings.optimizer!r}, "
            f"dtype={str(dtype).replace('torch.', '')}): lower it.")


class EpochRun:
    """The epoch loop shared by in-memory, streamed and data-parallel training, which can return
    between two epochs and go on later.

    The loop runs the batches and computes each epoch's metrics; early stopping,
    progress bars, log lines, schedules and checkpoints are callbacks
    (:mod:`skobject2vec.callbacks`). :meth:`go_on` trains, :meth:`finish` ends the fit and
    returns its history. A fit that compares recipes pauses the first where it still improves
    late, trains the next, and goes on with the first only where it can still win
    (:func:`skobject2vec._fit.fit_in_memory`); going on is the same run as one never paused (the
    optimizer, the callbacks and the batch stream carry on; the caller carries torch's RNG).

    Parameters
    ----------
    epoch_batches : callable
        ``epoch_batches(epoch)`` -> iterable of ``(inputs, target, weight)`` training batches.
    validate : callable or None
        ``validate()`` -> validation scores (:func:`evaluation_scores`), which go into
        the epoch's history record (early stopping watches them).
    reduce_sums : callable
        The data-parallel hook: sums a small float64 array across ranks, so the train
        metric covers every rank's records (identity in one process). ``validate`` must
        return reduced scores, so that all ranks take the same early-stopping decision.
    main_process : bool
        Only the main process shows bars and prints lines.
    callbacks : list of Callback or None
        None: :func:`~skobject2vec.callbacks.default_callbacks` of ``settings``.
    """

    def __init__(self, net: torch.nn.Module, epoch_batches: Callable[[int], Iterable[Batch]], settings: TrainSettings,
                 *, dtype: torch.dtype, sparse: bool, validate: Callable[[], dict[str, float]] | None = None,
                 reduce_sums: Callable[[np.ndarray], np.ndarray] = _identity, main_process: bool = True,
                 callbacks: Sequence[Callback] | None = None) -> None:
        if not torch.sparse.check_sparse_tensor_invariants.is_enabled():
            # torch's sparse Adagrad warns on every fit unless the (default) off is chosen explicitly
            torch.sparse.check_sparse_tensor_invariants.disable()
        self.net, self.epoch_batches, self.settings, self.dtype = net, epoch_batches, settings, dtype
        self.reduce_sums = reduce_sums
        self.callbacks: list[Callback] = list(resolve_callbacks(None, settings) if callbacks is None else callbacks)
        self.loop = Loop(net, make_optimizers(net, settings.optimizer, settings.learning_rate, settings.weight_decay,
                                              sparse),
                         settings, "cross_entropy" if settings.task == "classification" else "mean_squared_error",
                         main_process, validate=validate)
        self.epoch = 0  # the last epoch trained
        self._begun = False

    def go_on(self, pause: Callable[[Loop], bool] | None = None) -> bool:
        """Train until the fit ends (its last epoch, or a callback stopped it): False; or, with
        ``pause``, until ``pause(loop)`` holds after an epoch before the last: True, and a later call
        goes on."""
        loop, settings = self.loop, self.settings
        with torch_threads(settings.n_threads):
            if not self._begun:
                self._begun = True
                for c in self.callbacks:
                    c.on_train_begin(loop)
            while self.epoch < settings.epochs and not loop.stop:
                self.epoch += 1
                self._train_epoch(self.epoch)
                if not loop.stop and self.epoch < settings.epochs and pause is not None and pause(loop):
                    self._drop_gradients()
                    return True
        return False

    def _train_epoch(self, epoch: int) -> None:
        loop, settings = self.loop, self.settings
        started = time.perf_counter()
        self.net.train()
        batches = self.epoch_batches(epoch)
        for c in self.callbacks:
            c.on_epoch_begin(loop, epoch, len(cast(Sized, batches)) if hasattr(batches, "__len__") else None)
        *sums, first_bad = _run_batches(loop, batches, self.callbacks, settings.embedding_l2)
        running, seen = (float(v) for v in self.reduce_sums(np.array(sums)))
        flush_row_decay(loop.optimizers)  # the epoch's weights as dense decay would have left them
        if not (np.isfinite(running) and np.isfinite(seen)):
            # a NaN model must never be the result of a fit (the estimator keeps its previous state)
            raise ValueError(_divergence_message(epoch, running / max(seen, 1e-12), first_bad, batches, settings,
                                                 self.dtype))
        scale = settings.target_scale ** 2 if settings.task == "regression" else 1.0
        record = {"epoch": epoch, f"train:{loop.metric}": running / max(seen, 1e-12) * scale}
        if loop.validate is not None:
            record.update({f"validation:{k}": v for k, v in loop.validate().items()})
        record["seconds"] = time.perf_counter() - started
        loop.history.append(record)
        for c in self.callbacks:
            c.on_epoch_end(loop, record)

    def _drop_gradients(self) -> None:
        drop_gradients(self.loop.optimizers)  # the last step's gradients (a dense vocab x dim table each)

    def finish(self) -> list[dict[str, Any]]:
        """End the fit where it stands (the callbacks' ``on_train_end``: early stopping's best weights,
        weight averaging) and return its history."""
        with torch_threads(self.settings.n_threads):
            for c in self.callbacks:
                c.on_train_end(self.loop)
        self._drop_gradients()  # they must not outlive fit
        self.net.eval()
        return self.loop.history
