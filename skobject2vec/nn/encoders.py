"""Sequence encoders: each turns embedded tokens (B, L, D) plus a mask into (B, enc_dim).

Padding is internal. Every encoder ignores padded positions exactly (zeroed
before each convolution, packed away from the LSTM, excluded from every pool),
so an embedding never depends on what else is in its batch.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .invariant import ChunkedConv1d

AUTO_LAYERS = {"hcnn": 4, "bilstm": 1, "pooled_embedding": 1}


POOLINGS = ("mean", "max", "head_mean")


class PooledEmbeddingEncoder(nn.Module):
    """Masked mean (SageMaker's ``pooled_embedding``) or masked max of the token embeddings.

    ``pooling="max"`` takes each dimension's largest value over the valid tokens
    (InferSent's max pooling, here over the raw token vectors); ``"head_mean"`` adds the
    first token's vector to the mean of the others' (an id followed by its context, such
    as a user and the items the user rated: SVD++'s user vector, where a plain mean would
    weigh the id as one token among hundreds). None has weights, so the networks of
    every pooling have the same parameters.
    """

    def __init__(self, token_dim: int, enc_dim: int, pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling {pooling!r}; expected one of {POOLINGS}.")
        self.pooling = pooling
        # SageMaker forces token_dim == enc_dim; a projection only appears when a
        # pretrained table of another width is used.
        self.proj = nn.Identity() if token_dim == enc_dim else nn.Linear(token_dim, enc_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.pooling == "max":
            pooled = x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)
        elif self.pooling == "head_mean":
            weights = mask[:, 1:].unsqueeze(-1).to(x.dtype)
            pooled = x[:, 0] + (x[:, 1:] * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1)
        else:
            weights = mask.unsqueeze(-1).to(x.dtype)
            pooled = (x * weights).sum(dim=1) / weights.sum(dim=1)
        return cast(torch.Tensor, self.proj(pooled))

    def extra_repr(self) -> str:
        return f"pooling={self.pooling!r}"


class HCNNEncoder(nn.Module):
    """Hierarchical CNN: ``layers`` stacked 1-D convolutions with ReLU; the receptive
    field grows by ``filter_width - 1`` per layer. Each layer's output is max-pooled
    over the valid positions, the pools are concatenated (InferSent's hierarchical
    ConvNet) and projected to ``enc_dim``."""

    def __init__(self, token_dim: int, enc_dim: int, layers: int, filter_width: int):
        super().__init__()
        # "same" padding: inside the convolution for an odd width; by hand for an even one, split as
        # torch splits it (the extra zero on the right), since torch warns that padding="same" with an
        # even width copies the input anyway.
        odd = filter_width % 2 == 1
        self.convs = nn.ModuleList(
            nn.Conv1d(token_dim if i == 0 else enc_dim, enc_dim, filter_width, padding=filter_width // 2 if odd else 0)
            for i in range(layers)
        )
        self.same_padding = (0, 0) if odd else ((filter_width - 1) // 2, filter_width // 2)
        self.proj = nn.Linear(layers * enc_dim, enc_dim)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # torch's Module.__setstate__ is unannotated (untyped_calls_exclude misses calls through super())
        super().__setstate__(state)  # type: ignore[no-untyped-call]
        if "same_padding" not in self.__dict__:  # pickled when the convolutions padded themselves
            self.same_padding = (0, 0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        keep = mask.unsqueeze(1).to(x.dtype)  # (B, 1, L)
        hidden = x.transpose(1, 2)
        pools = []
        for conv in self.convs:
            # Zeroing padded positions before each convolution makes them act as
            # the convolution's own zero padding, whatever the batch's max length.
            hidden = hidden * keep
            if any(self.same_padding):
                hidden = nn.functional.pad(hidden, self.same_padding)
            hidden = torch.relu(_convolve(cast("nn.Conv1d | ChunkedConv1d", conv), hidden))
            # ReLU output is >= 0, so zeroed padding never wins the max.
            pools.append((hidden * keep).amax(dim=-1))
        return cast(torch.Tensor, self.proj(torch.cat(pools, dim=-1)))



#: Longest input (after padding) that :func:`_convolve` convolves as one matrix product on CPU.
UNFOLDED_MAX_LEN = 16


def _convolve(conv: nn.Conv1d | ChunkedConv1d, hidden: torch.Tensor) -> torch.Tensor:
    """``conv(hidden)``; on CPU over short inputs (tuples of fields) as one matrix product of the
    unfolded windows.

    oneDNN's convolution is slow for the short inputs of link prediction (``[head, relation]``,
    width 2): 7.3 ms forward and backward for a batch of 256 x 128 channels x 3 positions (one
    thread), 55 % of a UMLS fit's time, against 2.3 ms as a product of the (batch x positions, channels
    x width) windows with the weight; in float64 (the batch-invariant inference copy) 12 against
    1.5 ms. From about 20 positions on the convolution is as fast (sentences keep it). The sums run
    in another order, so the floats differ in the last places.
    """
    if isinstance(conv, ChunkedConv1d):  # an inference copy's (nn.model.invariant_copy)
        return cast(torch.Tensor, conv(hidden))
    width = conv.kernel_size[0]
    padding = cast(tuple[int, ...], conv.padding)[0]
    if (hidden.device.type != "cpu" or hidden.size(-1) + 2 * padding > UNFOLDED_MAX_LEN
            or torch.onnx.is_in_onnx_export()):
        return cast(torch.Tensor, conv(hidden))
    if padding:
        hidden = nn.functional.pad(hidden, (padding, padding))
    batch, channels, length = hidden.shape
    positions = length - width + 1
    windows = hidden.unfold(2, width, 1).transpose(1, 2).reshape(batch * positions, channels * width)
    out = nn.functional.linear(windows, conv.weight.reshape(conv.out_channels, channels * width), conv.bias)
    return out.view(batch, positions, conv.out_channels).transpose(1, 2)

class BiLSTMEncoder(nn.Module):
    """Bidirectional LSTM over packed sequences, max-pooled over valid time steps."""

    def __init__(self, token_dim: int, enc_dim: int, layers: int):
        super().__init__()
        self.enc_dim = enc_dim
        self.lstm = nn.LSTM(token_dim, (enc_dim + 1) // 2, num_layers=layers,
                            bidirectional=True, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, padding_value=float("-inf"),
                                     total_length=x.size(1))
        return out.amax(dim=1)[:, : self.enc_dim]


def resolve_layers(network: str, layers: int | str | None) -> int:
    return AUTO_LAYERS[network] if layers in (None, "auto") else int(layers)


def build_encoder(network: str, token_dim: int, enc_dim: int, layers: int | str | None = "auto", filter_width: int = 3,
                  pooling: str = "mean") -> nn.Module:
    """Make the encoder named by SageMaker's ``enc*_network`` value (``pooling``: pooled_embedding only)."""
    if network == "pooled_embedding":
        return PooledEmbeddingEncoder(token_dim, enc_dim, pooling)
    if network == "hcnn":
        return HCNNEncoder(token_dim, enc_dim, resolve_layers(network, layers), filter_width)
    if network == "bilstm":
        return BiLSTMEncoder(token_dim, enc_dim, resolve_layers(network, layers))
    raise ValueError(f"Unknown encoder network {network!r}; expected hcnn, bilstm or pooled_embedding.")
