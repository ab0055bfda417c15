"""Inference: network outputs in the user's units, one function for every consumer.

:func:`postprocess` is the single place that turns the network's raw outputs into
what a user sees: class probabilities (or their logarithm) for a classifier, scores
in the target's units for a regressor. The estimators (``predict_proba``,
``predict``), the server, the ONNX graph and the CLI's test metrics all go
through it, so they cannot disagree. :func:`predict_outputs` and :func:`embed`
run a network over any number of records in bounded-size batches.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from sklearn.base import is_classifier

from .data.batching import PairData, inference_batches
from .nn.model import invariant_copy, widened_copy

__all__ = ["OutputSpec", "task_of", "postprocess", "predict_outputs", "embed", "inference_net",
           "INFERENCE_BATCH_SIZE"]

#: Records per forward pass at predict/transform time: bounds memory for any n.
INFERENCE_BATCH_SIZE = 1024


def task_of(estimator) -> str:
    """``"classification"`` or ``"regression"``: the one way the package asks what an estimator is.

    The estimators declare it (their ``_task``); anything else (a Pipeline ending in one)
    answers through scikit-learn's ``is_classifier``.
    """
    declared = getattr(estimator, "_task", None)
    if declared:
        return declared
    return "classification" if is_classifier(estimator) else "regression"


@dataclass(frozen=True)
class OutputSpec:
    """What :func:`postprocess` needs to know about a fitted estimator."""

    task: str
    y_mean: float = 0.0
    y_scale: float = 1.0

    @classmethod
    def of(cls, estimator) -> OutputSpec:
        task = task_of(estimator)
        if task == "classification":
            return cls(task)
        return cls(task, float(estimator.y_mean_), float(estimator.y_scale_))


def postprocess(raw: torch.Tensor, spec: OutputSpec, *, log: bool = False) -> torch.Tensor:
    """Raw network outputs to the user's units.

    Pure torch, so the ONNX export traces the very same function.

    Parameters
    ----------
    raw : torch.Tensor of shape (batch, n_outputs)
        The network's output layer.
    spec : OutputSpec
        The task and, for a regressor, the target's mean and scale.
    log : bool, default=False
        Classifier: return log-probabilities (computed stably) instead.

    Returns
    -------
    torch.Tensor
        Classifier: probabilities (batch, n_classes), columns in the order of
        ``classes_``. Regressor: scores (batch,) in the target's units
        (``raw * y_scale_ + y_mean_``).
    """
    if spec.task == "classification":
        return torch.log_softmax(raw, dim=1) if log else torch.softmax(raw, dim=1)
    return raw[:, 0] * spec.y_scale + spec.y_mean


# float32 network -> its inference copy (invariant_copy or widened_copy) and the parameter versions it was made from
_INFERENCE_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_COPIES_LOCK = threading.Lock()


def inference_net(net):
    """``(runner, dtype)``: the module that computes ``net``'s outputs at inference, and ``net``'s dtype.

    A float32 network runs as a copy whose outputs are the same bits for a record whatever else
    is in its batch, on any CPU (the guarantee scikit-learn's ``check_methods_subset_invariance``
    tests): :func:`~skobject2vec.nn.model.invariant_copy` (float32 products of a fixed shape,
    measured on this CPU, float64 where the measurement fails) or, with a bilstm encoder,
    :func:`~skobject2vec.nn.model.widened_copy` (float64 arithmetic, rounded back to float32 by the
    callers). The copy is cached per network and rebuilt when its weights change (``partial_fit``,
    a warm start). A float64 network runs as it is.
    """
    dtype = next(net.parameters()).dtype
    if dtype == torch.float64:
        return net.eval(), dtype
    versions = tuple((p._version, p.data_ptr()) for p in net.parameters())
    with _COPIES_LOCK:
        cached = _INFERENCE_COPIES.get(net)
        if cached is None or cached[0] != versions:
            copy = widened_copy(net) if "bilstm" in net.config["networks"] else invariant_copy(net)
            cached = _INFERENCE_COPIES[net] = (versions, copy)
    return cached[1], dtype


def predict_outputs(net, pairs: PairData, batcher, spec: OutputSpec, *, log: bool = False) -> np.ndarray:
    """:func:`postprocess` of the network's outputs for ``pairs``, float64, in bounded-size batches.

    The raw outputs are rounded to the network's dtype first (see :func:`inference_net`).
    """
    runner, dtype = inference_net(net)
    n = len(pairs)
    assert pairs.in0 is not None and pairs.in1 is not None  # pairs to score: both sides
    lengths = np.maximum(pairs.in0.lengths, pairs.in1.lengths)
    out, flat = None, runner.flat_sides()
    with torch.inference_mode():
        for index in inference_batches(lengths, INFERENCE_BATCH_SIZE):
            raw = runner(*batcher.pair(pairs, index, flat=flat)).to(dtype).double()
            values = postprocess(raw, spec, log=log).cpu().numpy()
            if out is None:
                out = np.empty((n,) + values.shape[1:], dtype=np.float64)
            out[index] = values
    return cast(np.ndarray, out)  # set by the first batch (input validation refuses empty X)


def embed(net, ragged, side: int, batcher) -> np.ndarray:
    """Encoder outputs (n, enc_dim) for one side, in the network's dtype, in bounded-size batches
    (batch-invariant bit for bit: :func:`inference_net`)."""
    runner, dtype = inference_net(net)
    out = np.empty((len(ragged), net.config["enc_dim"]), dtype=torch.empty(0, dtype=dtype).numpy().dtype)
    flat = runner.flat_sides()[side]
    with torch.inference_mode():
        for index in inference_batches(ragged.lengths, INFERENCE_BATCH_SIZE):
            ids, lengths = batcher.side(ragged, index, side, flat)
            out[index] = runner.encode(side, ids, lengths).to(dtype).cpu().numpy()
    return out
