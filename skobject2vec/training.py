"""The training loop and batched inference, shared by the estimators, the CLI and the server.

A training set is described by index arrays rather than copies: record ``i`` of
an epoch pairs ``in0[left[i]]`` with ``in1[right[i]]``. Plain data has
``left == right``; negative sampling only appends new index pairs. So a batch is
padded straight from the stored sequences, to that batch's longest record.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .data.batching import PairData, batch_indices, inference_batches

logger = logging.getLogger("skobject2vec")

#: Records per forward pass at predict/transform time: bounds memory for any n.
INFERENCE_BATCH_SIZE = 1024

SPARSE_OPTIMIZERS = ("adam", "adagrad", "sgd")


def resolve_device(device) -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"Invalid value for parameter 'device': {device!r}; expected 'auto', 'cpu', 'cuda' "
                         f"or 'cuda:N'.") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available on this machine; "
                         f"use device='auto' or 'cpu'.")
    return resolved


@dataclass
class Batcher:
    """Turns record indices into padded tensors on the training device."""

    max_lens: tuple[int, int]
    unknown_ids: tuple[int, int]
    device: torch.device

    def side(self, ragged, index, side: int):
        ids, lengths = ragged.pad(index, self.max_lens[side], self.unknown_ids[side])
        return ids.to(self.device, non_blocking=True), lengths

    def pair(self, pairs: PairData, left, right=None):
        right = left if right is None else right
        return (*self.side(pairs.in0, left, 0), *self.side(pairs.in1, right, 1))


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


def _fused(name: str) -> dict:
    """Fused Adam/SGD (one kernel for all parameters, CPU and CUDA): on CPU the default
    multi-tensor Adam step over a 50,000-row token table costs several times the
    forward and backward passes (benchmarks/bench_training.py)."""
    return {"fused": True} if name in ("adam", "sgd") else {}


def make_optimizers(net: torch.nn.Module, name: str, lr: float, weight_decay: float, sparse: bool):
    """One optimizer, or (row_sparse) one for the sparse token tables plus one for the rest."""
    params = [p for p in net.parameters() if p.requires_grad]
    dense_classes = {
        "adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad, "adadelta": torch.optim.Adadelta,
        "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop,
    }
    if not sparse:
        return [dense_classes[name](params, lr=lr, weight_decay=weight_decay, **_fused(name))]
    if name not in SPARSE_OPTIMIZERS:
        raise ValueError(
            f"token_embedding_storage_type='row_sparse' needs optimizer adam, adagrad or sgd (optimizers "
            f"with sparse updates); got optimizer={name!r}."
        )
    sparse_ids = {id(m.weight) for m in net.modules() if isinstance(m, torch.nn.Embedding) and m.sparse}
    sparse_params = [p for p in params if id(p) in sparse_ids]
    dense_params = [p for p in params if id(p) not in sparse_ids]
    optimizers = []
    if sparse_params:
        # Weight decay would touch every row each step and defeat sparse updates,
        # so it applies to the dense parameters only (documented).
        sparse_cls = {"adam": torch.optim.SparseAdam, "adagrad": torch.optim.Adagrad, "sgd": torch.optim.SGD}[name]
        optimizers.append(sparse_cls(sparse_params, lr=lr))
    if dense_params:
        optimizers.append(dense_classes[name](dense_params, lr=lr, weight_decay=weight_decay, **_fused(name)))
    return optimizers


def _loss(outputs, target, weight, task):
    if task == "classification":
        per_record = F.cross_entropy(outputs, target, reduction="none")
    else:
        per_record = (outputs.squeeze(1) - target) ** 2
    return _weighted_mean(per_record, weight)


def _weighted_mean(per_record, weight):
    # clamp: a batch of zero weights (sample_weight, or a data-parallel rank with no batch
    # left) gives 0 instead of nan; a positive sum is unchanged.
    return (per_record * weight).sum() / weight.sum().clamp_min(torch.finfo(weight.dtype).tiny)


def _to_tensors(data: EpochData, index, task, dtype, device):
    target = torch.from_numpy(data.target[index])
    target = target.long() if task == "classification" else target.to(dtype)
    weight = torch.from_numpy(data.weight[index]).to(dtype)
    return target.to(device, non_blocking=True), weight.to(device, non_blocking=True)


def evaluation_sums(net, batches, settings: TrainSettings) -> np.ndarray:
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


def evaluation_scores(sums, settings: TrainSettings) -> dict:
    """Validation metrics (SageMaker's names, the user's units) from :func:`evaluation_sums`."""
    loss = float(sums[0] / sums[1])
    if settings.task == "classification":
        return {"cross_entropy": loss, "accuracy": float(sums[2] / sums[1])}
    return {"mean_squared_error": loss * settings.target_scale ** 2}


def evaluation_batches(pairs: PairData, data: EpochData, batcher: Batcher, task, dtype):
    """Held-out records as ``(inputs, target, weight)`` batches of similar lengths."""
    for index in inference_batches(pairs.in0.lengths[data.left], INFERENCE_BATCH_SIZE):
        yield (batcher.pair(pairs, data.left[index], data.right[index]),
               *_to_tensors(data, index, task, dtype, batcher.device))


def evaluate(net, pairs: PairData, data: EpochData, batcher: Batcher, settings: TrainSettings, dtype) -> dict:
    """Weighted loss (and accuracy) on held-out records, in the user's units."""
    batches = evaluation_batches(pairs, data, batcher, settings.task, dtype)
    return evaluation_scores(evaluation_sums(net, batches, settings), settings)


class _Batches:
    """A sized iterable of mini-batches, so that progress bars know the epoch's length."""

    def __init__(self, indices, make_batch):
        self.indices, self.make_batch = indices, make_batch

    def __len__(self):
        return len(self.indices)

    def __iter__(self):
        return (self.make_batch(index) for index in self.indices)


def training_batches(pairs: PairData, data: EpochData, batcher: Batcher, settings: TrainSettings, *,
                     rng: np.random.Generator, dtype):
    """Shuffled (and with ``bucket_width``, length-bucketed) ``(inputs, target, weight)`` mini-batches."""
    lengths = None
    if settings.bucket_width > 0:
        lengths = np.maximum(pairs.in0.lengths[data.left], pairs.in1.lengths[data.right])
    indices = batch_indices(len(data.left), settings.batch_size, shuffle=True, rng=rng,
                            lengths=lengths, bucket_width=settings.bucket_width)
    return _Batches(indices, lambda index: (batcher.pair(pairs, data.left[index], data.right[index]),
                                            *_to_tensors(data, index, settings.task, dtype, batcher.device)))


def train(net, pairs: PairData, epoch_data, batcher: Batcher, settings: TrainSettings, *, rng: np.random.Generator,
          dtype, sparse: bool, validation=None):
    """Train ``net`` in place.

    Parameters
    ----------
    epoch_data : callable
        ``epoch_data(epoch, rng) -> EpochData``: the records of one epoch (negative
        sampling draws fresh negatives here).
    validation : (PairData, EpochData) or None
        Held-out records for early stopping; the best weights are restored.

    Returns
    -------
    history : list of dict
        One JSON-serialisable dict per epoch, with SageMaker's metric names.
    """

    def epoch_batches(epoch):
        return training_batches(pairs, epoch_data(epoch, rng), batcher, settings, rng=rng, dtype=dtype)

    validate = None
    if validation is not None:
        def validate():
            return evaluate(net, *validation, batcher, settings, dtype)

    return run_epochs(net, epoch_batches, settings, dtype=dtype, sparse=sparse, validate=validate)


def run_epochs(net, epoch_batches, settings: TrainSettings, *, dtype, sparse: bool, validate=None,
               reduce_sums=None, main_process: bool = True):
    """The epoch loop shared by in-memory, streamed and data-parallel training.

    Parameters
    ----------
    epoch_batches : callable
        ``epoch_batches(epoch)`` -> iterable of ``(inputs, target, weight)`` training batches.
    validate : callable or None
        ``validate()`` -> validation scores (:func:`evaluation_scores`); early stopping
        watches them and the best epoch's weights are restored.
    reduce_sums : callable or None
        Data parallel: sums a small float64 array across ranks, so the train metric
        covers every rank's records. ``validate`` must return reduced scores, so that
        all ranks take the same early-stopping decision.
    main_process : bool
        Only the main process prints per-epoch lines.
    """
    from tqdm.auto import tqdm

    optimizers = make_optimizers(net, settings.optimizer, settings.learning_rate, settings.weight_decay, sparse)
    metric = "cross_entropy" if settings.task == "classification" else "mean_squared_error"
    history, best_state, best_epoch, stale = [], None, None, 0
    best_loss = reference = math.inf
    for epoch in range(1, settings.epochs + 1):
        started = time.perf_counter()
        net.train()
        # Running sums stay on the device: no host synchronisation per step unless a bar shows them.
        running = seen = None
        batches = epoch_batches(epoch)
        # verbose=1 keeps each finished bar (with the validation metrics) as the epoch's line;
        # verbose=2 prints a line instead. The bar is updated by hand, because iterating a
        # bar closes it before the validation metrics are known.
        bar = tqdm(total=len(batches) if hasattr(batches, "__len__") else None,
                   desc=f"epoch {epoch}/{settings.epochs}", unit="batch", leave=settings.verbose == 1,
                   disable=settings.verbose < 1 or not main_process, dynamic_ncols=True)
        for inputs, target, weight in batches:
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            if settings.embedding_l2 > 0:
                outputs, penalty = net(*inputs, with_row_penalty=True)
                loss = _loss(outputs, target, weight, settings.task)
                objective = loss + settings.embedding_l2 * _weighted_mean(penalty, weight)
            else:
                loss = objective = _loss(net(*inputs), target, weight, settings.task)
            objective.backward()
            for opt in optimizers:
                opt.step()
            batch_weight = weight.detach().sum()
            weighted = loss.detach() * batch_weight
            running = weighted if running is None else running + weighted
            seen = batch_weight if seen is None else seen + batch_weight
            if settings.verbose:
                bar.set_postfix(loss=f"{float(running) / max(float(seen), 1e-12):.4f}", refresh=False)
            bar.update()
        running, seen = (0.0, 0.0) if running is None else (float(running), float(seen))
        if reduce_sums is not None:
            running, seen = (float(v) for v in reduce_sums(np.array([running, seen])))
        train_loss = running / max(seen, 1e-12)
        record = {"epoch": epoch, f"train:{metric}": train_loss * (settings.target_scale ** 2
                                                                      if settings.task == "regression" else 1.0)}
        if validate is not None:
            scores = validate()
            record.update({f"validation:{k}": v for k, v in scores.items()})
            val_loss = scores[metric]
            if val_loss < best_loss:  # keep the best weights, as SageMaker keeps the best model
                best_loss, best_epoch, best_state = val_loss, epoch, copy.deepcopy(net.state_dict())
            if val_loss < reference - settings.tolerance:
                reference, stale = val_loss, 0
            else:
                stale += 1
        record["seconds"] = time.perf_counter() - started
        history.append(record)
        if settings.verbose and validate is not None:
            bar.set_postfix(loss=f"{train_loss:.4f}", **{f"val_{k}": f"{v:.4f}" for k, v in scores.items()})
        bar.close()
        message = "epoch %d/%d " % (epoch, settings.epochs) + " ".join(
            f"{k}={v:.6g}" for k, v in record.items() if k not in ("epoch",))
        logger.info(message, extra={"epoch_record": record, "main_process": main_process})  # live CLI lines
        if settings.verbose > 1 and main_process:
            print(message, flush=True)
        if validate is not None and stale >= settings.patience:
            logger.info("early stopping after epoch %d: no improvement of validation:%s by %g for %d epochs",
                        epoch, metric, settings.tolerance, settings.patience)
            break
    if best_state is not None:
        net.load_state_dict(best_state)
        for record in history:
            record["best"] = record["epoch"] == best_epoch
    for opt in optimizers:  # the last step's gradients (a dense vocab x dim table each) must not outlive fit
        opt.zero_grad(set_to_none=True)
    net.eval()
    return history


def predict_outputs(net, pairs: PairData, batcher: Batcher, task: str) -> np.ndarray:
    """Class log-probabilities (n, k) or scores (n,), float64, in bounded-size batches."""
    net.eval()
    n = len(pairs)
    lengths = np.maximum(pairs.in0.lengths, pairs.in1.lengths)
    out = None
    with torch.inference_mode():
        for index in inference_batches(lengths, INFERENCE_BATCH_SIZE):
            raw = net(*batcher.pair(pairs, index)).double()
            raw = torch.log_softmax(raw, dim=1) if task == "classification" else raw[:, 0]
            raw = raw.cpu().numpy()
            if out is None:
                out = np.empty((n,) + raw.shape[1:], dtype=np.float64)
            out[index] = raw
    return out


def embed(net, ragged, side: int, batcher: Batcher) -> np.ndarray:
    """Encoder outputs (n, enc_dim) for one side, in the network's dtype, in bounded-size batches."""
    net.eval()
    dtype = torch.empty(0, dtype=next(net.parameters()).dtype).numpy().dtype
    out = np.empty((len(ragged), net.config["enc_dim"]), dtype=dtype)
    with torch.inference_mode():
        for index in inference_batches(ragged.lengths, INFERENCE_BATCH_SIZE):
            ids, lengths = batcher.side(ragged, index, side)
            out[index] = net.encode(side, ids, lengths).cpu().numpy()
    return out
