"""ONNX export of a fitted estimator: the whole pair model, or one encoder alone.

The exported graphs take padded token ids plus lengths, so any ONNX runtime
(onnxruntime, TensorRT, a browser) can serve a model without Python or torch:

* ``part="model"``: inputs ``in0_ids``, ``in0_lengths``, ``in1_ids``,
  ``in1_lengths``; output ``probabilities`` (classifier: shape (batch, n_classes),
  columns in the order of ``classes_``, as ``predict_proba``) or ``score``
  (regressor: shape (batch,), in the target's units, as ``predict``).
* ``part="enc0"`` (``"enc1"``): inputs ``in0_ids``, ``in0_lengths``
  (``in1_ids``, ``in1_lengths``); output ``embeddings``, shape (batch, enc_dim), as
  ``transform([{"in0": ...}])`` (SageMaker's embedding mode).

Inputs:

* ``inN_ids``: int64, shape (batch, seq), token ids padded on the right. Padding
  positions may hold any value: they are masked by ``inN_lengths``.
* ``inN_lengths``: int64, shape (batch,), the number of real tokens of each row
  (at least 1).
* batch and seq are dynamic axes; the two sides may have different seq lengths.
* Outputs have the network's float type (float32 unless the estimator was fitted
  with ``dtype="float64"``).

The graph applies the estimator's own preprocessing, so results match
``predict_proba``/``predict``/``transform``: sequences longer than
``max_seq_lens_`` are truncated and ids ``>= vocab_sizes_`` (unseen in training)
map to the unknown-token row. :func:`onnx_inputs` builds the input arrays from
records.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from pathlib import Path
from typing import cast

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ..data.records import records_to_pairs
from ..inference import OutputSpec, postprocess
from ..nn.encoders import BiLSTMEncoder

__all__ = ["to_onnx", "onnx_inputs", "PARTS"]

#: What :func:`to_onnx` can export.
PARTS = ("model", "enc0", "enc1")


class _MaskedBiLSTM(nn.Module):
    """Export-friendly twin of :class:`~skobject2vec.nn.encoders.BiLSTMEncoder`.

    Packed sequences do not export to ONNX, so each direction runs as its own
    one-layer LSTM over the padded batch. Padding sits after the real tokens, so
    the forward direction never sees it before a real step; the backward direction
    reads each row reversed *within its length* (a gather), which is exactly what
    packing does. Padded outputs are masked before the max-pool. Same weights,
    same results as the packed encoder.
    """

    def __init__(self, encoder: BiLSTMEncoder):
        super().__init__()
        lstm = encoder.lstm
        self.enc_dim = encoder.enc_dim
        self.forward_lstms, self.backward_lstms = nn.ModuleList(), nn.ModuleList()
        for layer in range(lstm.num_layers):
            width = lstm.input_size if layer == 0 else 2 * lstm.hidden_size
            for suffix, target in (("", self.forward_lstms), ("_reverse", self.backward_lstms)):
                one = nn.LSTM(width, lstm.hidden_size, batch_first=True)
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(one, f"{name}_l0").data.copy_(getattr(lstm, f"{name}_l{layer}{suffix}").data)
                target.append(one.to(cast(torch.Tensor, lstm.weight_ih_l0).dtype))  # a parameter registered by name

    def forward(self, x, mask, lengths):
        positions = torch.arange(x.size(1), device=x.device).unsqueeze(0)
        last = lengths.unsqueeze(1) - 1
        # Row b reversed within its length; padded positions stay in place.
        reverse = torch.where(positions <= last, last - positions, positions).unsqueeze(-1)
        hidden = x
        for forward_lstm, backward_lstm in zip(self.forward_lstms, self.backward_lstms):
            ahead, _ = forward_lstm(hidden)
            flipped = torch.gather(hidden, 1, reverse.expand(-1, -1, hidden.size(2)))
            behind, _ = backward_lstm(flipped)
            behind = torch.gather(behind, 1, reverse.expand(-1, -1, behind.size(2)))
            hidden = torch.cat([ahead, behind], dim=-1)
        hidden = hidden.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        return hidden.amax(dim=1)[:, : self.enc_dim]


class _Side(nn.Module):
    """One side: truncation, unknown-token mapping, token table, encoder."""

    def __init__(self, net, side: int, vocab_size: int, max_len: int):
        super().__init__()
        self.table = net.token_table(side)
        encoder = net.encoder(side)
        self.encoder = _MaskedBiLSTM(encoder) if isinstance(encoder, BiLSTMEncoder) else encoder
        self.vocab_size = int(vocab_size)
        self.max_len = int(max_len)

    def forward(self, ids, lengths):
        ids = ids[:, : self.max_len]
        lengths = torch.clamp(lengths, max=self.max_len)
        positions = torch.arange(ids.size(1), device=ids.device).unsqueeze(0)
        mask = positions < lengths.unsqueeze(1)
        # Padding may hold anything (even -1): zero it; unseen ids -> unknown row.
        ids = torch.clamp(torch.where(mask, ids, torch.zeros_like(ids)), max=self.vocab_size)
        return self.encoder(self.table(ids), mask, lengths)


class _PairModel(nn.Module):
    def __init__(self, net, sides, spec: OutputSpec):
        super().__init__()
        self.side0, self.side1 = sides
        self.comparator, self.mlp, self.output = net.comparator, net.mlp, net.output
        self.spec = spec

    def forward(self, in0_ids, in0_lengths, in1_ids, in1_lengths):
        e0 = self.side0(in0_ids, in0_lengths)
        e1 = self.side1(in1_ids, in1_lengths)
        return postprocess(self.output(self.mlp(self.comparator(e0, e1))), self.spec)  # as predict_proba / predict


def _export_module(estimator, part: str):
    """(module, input names, output name) for ``part`` on a CPU copy of the network."""
    net = copy.deepcopy(estimator.net_).cpu().eval()
    sides = [_Side(net, i, estimator.vocab_sizes_[i], estimator.max_seq_lens_[i]) for i in (0, 1)]
    if part == "model":
        spec = OutputSpec.of(estimator)
        names = ["in0_ids", "in0_lengths", "in1_ids", "in1_lengths"]
        return _PairModel(net, sides, spec), names, "probabilities" if spec.task == "classification" else "score"
    side = int(part[-1])
    return sides[side].eval(), [f"in{side}_ids", f"in{side}_lengths"], "embeddings"


def to_onnx(estimator, path, part: str = "model", *, opset_version: int | None = None) -> Path:
    """Export a fitted :class:`~skobject2vec.Object2VecClassifier` or
    :class:`~skobject2vec.Object2VecRegressor` to an ONNX file.

    Parameters
    ----------
    estimator : fitted Object2VecClassifier or Object2VecRegressor
    path : str or path-like
        The ``.onnx`` file to write.
    part : {"model", "enc0", "enc1"}, default="model"
        ``"model"``: the whole pair model (both encoders, comparator, MLP and
        output: probabilities for a classifier, the score for a regressor);
        ``"enc0"``/``"enc1"``: one encoder alone (embeddings). See the module
        documentation for the input and output names.
    opset_version : int, optional
        ONNX opset; the exporter's default when None.

    Returns
    -------
    path : Path

    Examples
    --------
    >>> import onnxruntime                                         # doctest: +SKIP
    >>> from skobject2vec.io.onnx import to_onnx, onnx_inputs       # doctest: +SKIP
    >>> to_onnx(clf, "model.onnx")                                 # doctest: +SKIP
    >>> session = onnxruntime.InferenceSession("model.onnx")       # doctest: +SKIP
    >>> session.run(None, onnx_inputs(X))[0]                       # doctest: +SKIP
    """
    if part not in PARTS:
        raise ValueError(f"part={part!r}; expected one of {PARTS}.")
    check_is_fitted(estimator, "net_")
    _require_onnx_extra()
    module, input_names, output_name = _export_module(estimator, part)
    sequence = [1, 3, 2, 3] if part == "model" else [1, 3]  # example lengths: any values work
    example = []
    for name in input_names:
        if name.endswith("_ids"):
            example.append(torch.zeros((2, 3), dtype=torch.long))
        else:
            example.append(torch.tensor(sequence[:2], dtype=torch.long))
    batch = torch.export.Dim("batch")
    dynamic_shapes = tuple(
        {0: batch, 1: torch.export.Dim(f"{name[:3]}_seq")} if name.endswith("_ids") else {0: batch}
        for name in input_names
    )
    path = Path(os.fspath(path))
    torch_onnx_logger = logging.getLogger("torch.onnx")
    level = torch_onnx_logger.level
    with warnings.catch_warnings():
        # torch's exporter warns and logs about its own internals (pytree deprecations,
        # axis renaming, optional torchvision ops), none of which concern this graph.
        warnings.simplefilter("ignore", (FutureWarning, UserWarning, DeprecationWarning))
        torch_onnx_logger.setLevel(logging.ERROR)
        try:
            program = torch.onnx.export(
                module, tuple(example), dynamo=True, input_names=input_names, output_names=[output_name],
                dynamic_shapes=dynamic_shapes, opset_version=opset_version, verbose=False, optimize=True,
            )
        finally:
            torch_onnx_logger.setLevel(level)
    assert program is not None  # dynamo=True returns the program
    program.save(str(path))
    return path


def _require_onnx_extra():
    """torch's dynamo exporter needs onnx and onnxscript: say which extra to install instead of a
    ModuleNotFoundError from deep inside torch."""
    import importlib.util

    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise ModuleNotFoundError(f"to_onnx needs the 'onnx' extra (missing {', '.join(missing)}): "
                                  f'pip install "skobject2vec[onnx]"', name=missing[0])


def onnx_inputs(X, part: str = "model") -> dict:
    """The input arrays of an exported graph, from records.

    Parameters
    ----------
    X : list of dict or DataFrame
        Records ``{"in0": [...], "in1": [...]}`` for ``part="model"``; records
        holding only ``"in0"`` (or only ``"in1"``) for ``"enc0"`` (``"enc1"``); the
        unused side of full records is dropped.
    part : {"model", "enc0", "enc1"}, default="model"

    Returns
    -------
    feeds : dict of str to ndarray
        ``{"in0_ids": int64 (n, L0), "in0_lengths": int64 (n,), ...}``, ready for
        ``onnxruntime.InferenceSession.run(None, feeds)``.
    """
    if part not in PARTS:
        raise ValueError(f"part={part!r}; expected one of {PARTS}.")
    pairs = records_to_pairs(X, what="onnx_inputs", single_side_ok=part != "model")
    wanted = (0, 1) if part == "model" else (int(part[-1]),)
    feeds = {}
    for side in wanted:
        ragged = (pairs.in0, pairs.in1)[side]
        if ragged is None:
            raise ValueError(f"onnx_inputs: part={part!r} needs 'in{side}' in every record.")
        ids, lengths = ragged.pad(np.arange(len(ragged)), max(int(ragged.lengths.max()), 1))
        feeds[f"in{side}_ids"] = ids.numpy()
        feeds[f"in{side}_lengths"] = lengths.numpy()
    return feeds
