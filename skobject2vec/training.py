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
from dataclasses import dataclass, field

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
    history: list = field(default_factory=list)


def make_optimizers(net: torch.nn.Module, name: str, lr: float, weight_decay: float, sparse: bool):
    """One optimizer, or (row_sparse) one for the sparse token tables plus one for the rest."""
    params = [p for p in net.parameters() if p.requires_grad]
    dense_classes = {
        "adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad, "adadelta": torch.optim.Adadelta,
        "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop,
    }
    if not sparse:
        return [dense_classes[name](params, lr=lr, weight_decay=weight_decay)]
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
        optimizers.append(dense_classes[name](dense_params, lr=lr, weight_decay=weight_decay))
    return optimizers


def _loss(outputs, target, weight, task):
    if task == "classification":
        per_record = F.cross_entropy(outputs, target, reduction="none")
    else:
        per_record = (outputs.squeeze(1) - target) ** 2
    return (per_record * weight).sum() / weight.sum()


def _to_tensors(data: EpochData, index, task, dtype, device):
    target = torch.from_numpy(data.target[index])
    target = target.long() if task == "classification" else target.to(dtype)
    weight = torch.from_numpy(data.weight[index]).to(dtype)
    return target.to(device, non_blocking=True), weight.to(device, non_blocking=True)


def evaluate(net, pairs: PairData, data: EpochData, batcher: Batcher, settings: TrainSettings, dtype) -> dict:
    """Weighted loss (and accuracy) on held-out records, in the user's units."""
    net.eval()
    total_loss = total_weight = correct = 0.0
    with torch.inference_mode():
        for index in inference_batches(pairs.in0.lengths[data.left], INFERENCE_BATCH_SIZE):
            outputs = net(*batcher.pair(pairs, data.left[index], data.right[index]))
            target, weight = _to_tensors(data, index, settings.task, dtype, batcher.device)
            batch_weight = float(weight.sum())
            total_loss += float(_loss(outputs, target, weight, settings.task)) * batch_weight
            total_weight += batch_weight
            if settings.task == "classification":
                correct += float(((outputs.argmax(1) == target).to(dtype) * weight).sum())
    loss = total_loss / total_weight
    if settings.task == "classification":
        return {"cross_entropy": loss, "accuracy": correct / total_weight}
    return {"mean_squared_error": loss * settings.target_scale ** 2}


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
    from tqdm.auto import tqdm

    optimizers = make_optimizers(net, settings.optimizer, settings.learning_rate, settings.weight_decay, sparse)
    metric = "cross_entropy" if settings.task == "classification" else "mean_squared_error"
    history, best_state, best_epoch, stale = [], None, None, 0
    best_loss = reference = math.inf
    for epoch in range(1, settings.epochs + 1):
        started = time.perf_counter()
        data = epoch_data(epoch, rng)
        lengths = None
        if settings.bucket_width > 0:
            lengths = np.maximum(pairs.in0.lengths[data.left], pairs.in1.lengths[data.right])
        batches = batch_indices(len(data.left), settings.batch_size, shuffle=True, rng=rng,
                                lengths=lengths, bucket_width=settings.bucket_width)
        net.train()
        running, seen = 0.0, 0.0
        bar = tqdm(batches, desc=f"epoch {epoch}/{settings.epochs}", unit="batch", leave=False,
                   disable=settings.verbose < 1, dynamic_ncols=True)
        for index in bar:
            inputs = batcher.pair(pairs, data.left[index], data.right[index])
            target, weight = _to_tensors(data, index, settings.task, dtype, batcher.device)
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss = _loss(net(*inputs), target, weight, settings.task)
            loss.backward()
            for opt in optimizers:
                opt.step()
            batch_weight = float(weight.sum())
            running += float(loss.detach()) * batch_weight
            seen += batch_weight
            if settings.verbose:
                bar.set_postfix(loss=f"{running / seen:.4f}", refresh=False)
        train_loss = running / max(seen, 1e-12)
        record = {"epoch": epoch, f"train:{metric}": train_loss * (settings.target_scale ** 2
                                                                      if settings.task == "regression" else 1.0)}
        if validation is not None:
            scores = evaluate(net, *validation, batcher, settings, dtype)
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
        bar.close()
        message = "epoch %d/%d " % (epoch, settings.epochs) + " ".join(
            f"{k}={v:.6g}" for k, v in record.items() if k not in ("epoch",))
        logger.info(message)
        if settings.verbose > 1:
            print(message, flush=True)
        if validation is not None and stale >= settings.patience:
            logger.info("early stopping after epoch %d: no improvement of validation:%s by %g for %d epochs",
                        epoch, metric, settings.tolerance, settings.patience)
            break
    if best_state is not None:
        net.load_state_dict(best_state)
        for record in history:
            record["best"] = record["epoch"] == best_epoch
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
    """Encoder outputs (n, enc_dim) float64 for one side, in bounded-size batches."""
    net.eval()
    out = np.empty((len(ragged), net.config["enc_dim"]), dtype=np.float64)
    with torch.inference_mode():
        for index in inference_batches(ragged.lengths, INFERENCE_BATCH_SIZE):
            ids, lengths = batcher.side(ragged, index, side)
            out[index] = net.encode(side, ids, lengths).double().cpu().numpy()
    return out
