"""Batch-invariant float32 matrix products for inference: the same bits for a row whatever its batch.

A float32 ``x @ W.T`` rounds each output by the order in which BLAS sums its terms, and BLAS picks
that order (its blocking, its kernels, a vector routine for one row) by the shape of the call, and
differently on each CPU; so a record's prediction would move with the records beside it. Computing
in float64 and rounding back avoids that, at twice the cost of the products and more. The layers here
keep float32 and fix the shapes instead: every product is a call of one of a few shapes,
``(rows of a chunk) x in_features x out_features`` with 256 rows or one of the short sizes, the last
chunk padded with zero rows. A row's output then depends only on the row, on where it sits in its
chunk and on the chunk's size; whether those matter is a property of the CPU's kernels, which each
layer measures (:func:`rows_independent`) before it relies on it, once per thread count: a short
size that gives other bits than a full chunk is not used, and where the position matters the layer
falls back to float64 products.

:class:`ChunkedLinear` replaces an ``nn.Linear``, :class:`ChunkedConv1d` an ``nn.Conv1d`` (its
windows are the rows: each window of a record holds only that record's tokens and zero padding).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import cast

import torch
from torch import nn

#: Rows per product: full chunks of CHUNK_ROWS; the rest of a batch in chunks of TAIL_ROWS sizes (largest
#: first, the last one padded), each size used only where this CPU's kernels give it the same bits as a
#: full chunk. One record alone then costs a 4-row product, not a 256-row one (0.06 ms against 0.8).
CHUNK_ROWS, TAIL_ROWS = 256, (16, 4)

Product = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _addmm(bias: torch.Tensor, rows: torch.Tensor, weight_t: torch.Tensor) -> torch.Tensor:
    # every call reads its rows contiguous and 64-byte aligned (some BLAS paths depend on alignment): a
    # copy where they are not (a chunk starting inside a row of 64 bytes, a strided view of overlapping
    # windows in ChunkedConv1d); torch's allocator aligns a fresh tensor to 64 bytes
    if not rows.is_contiguous() or rows.data_ptr() % 64:
        rows = rows.clone(memory_format=torch.contiguous_format)
    return torch.addmm(bias, rows, weight_t)


def chunked_product(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor, tails: tuple[int, ...] = (),
                    product: Product = _addmm) -> torch.Tensor:
    """``bias + x @ weight_t`` computed in products of CHUNK_ROWS rows, then the rows after the last full
    chunk in products of each of ``tails`` rows (largest first), the last product padded with zero rows
    (to the smallest of ``tails``, or to CHUNK_ROWS without ``tails``)."""
    n, start, pieces = x.shape[0], 0, []
    for size in (CHUNK_ROWS, *sorted(tails, reverse=True)):
        while n - start >= size:
            pieces.append(product(bias, x[start:start + size], weight_t))
            start += size
    if start < n:
        size = min(tails, default=CHUNK_ROWS)
        rest = x[start:]
        pieces.append(product(bias, torch.cat([rest, rest.new_zeros(size - len(rest), rest.shape[1])]), weight_t))
    return torch.cat(pieces)[:n] if len(pieces) > 1 else pieces[0][:n]


def rows_independent(weight_t: torch.Tensor, bias: torch.Tensor, product: Product = _addmm
                     ) -> tuple[bool, tuple[int, ...]]:
    """Whether, at the current thread count, a row's output of :func:`chunked_product` is the same bits at
    every position of a CHUNK_ROWS chunk, and the sizes of TAIL_ROWS whose chunks give the same bits too.

    Measured with random rows: each row at several positions (the chunk rolled by rows that move every
    row across the kernels' tiles), and every row in chunks of each tail size. Different summation
    orders give different bits for most of 256 x out_features random outputs, so a kernel that sums in
    another order at some position or for some size does not pass by chance.
    """
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(CHUNK_ROWS, weight_t.shape[0], generator=generator, dtype=weight_t.dtype).to(weight_t.device)
    reference = product(bias, x, weight_t)
    for shift in (1, 5, 7, 100):
        if not torch.equal(product(bias, x.roll(shift, 0), weight_t), reference.roll(shift, 0)):
            return False, ()
    return True, tuple(size for size in TAIL_ROWS if torch.equal(
        torch.cat([product(bias, x[start:start + size], weight_t) for start in range(0, CHUNK_ROWS, size)]),
        reference))


class _InvariantProduct:
    """``bias + rows @ weight.T`` for the rows of a matrix, each row's result the same bits in any batch:
    float32 chunks where :func:`rows_independent` holds at the current thread count, else float64 chunks
    (exact to ~1e-16, so their float32 rounding is the same but within ~1e-16 of a rounding boundary).
    ``weight`` and ``bias`` come in float64 (a map composed in float64 keeps its precision there)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        self.weight_t = weight.float().t().contiguous()
        self.bias = bias.float()
        self.wide_weight_t, self.wide_bias = weight.double().t().contiguous(), bias.double()
        self.verdicts: dict[int, tuple[bool, tuple[int, ...]]] = {}  # thread count -> rows_independent
        self._lock = threading.Lock()

    def verdict(self) -> tuple[bool, tuple[int, ...]]:
        """:func:`rows_independent` at the current thread count, measured once per count."""
        threads = torch.get_num_threads()
        with self._lock:
            if threads not in self.verdicts:
                with torch.no_grad():
                    self.verdicts[threads] = rows_independent(self.weight_t, self.bias)
            return self.verdicts[threads]

    def __call__(self, rows: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The products of ``rows`` (any dtype; float32 values pass through float64 exactly) in ``dtype``."""
        positions_free, tails = self.verdict()
        if positions_free:
            out = chunked_product(rows.float(), self.weight_t, self.bias, tails)
        else:
            out = chunked_product(rows.double(), self.wide_weight_t, self.wide_bias, TAIL_ROWS)
        return out.to(dtype)


class ChunkedLinear(nn.Linear):
    """An inference copy of an ``nn.Linear`` (or of an affine map composed in float64) whose float32
    outputs do not depend on the batch. Outputs in its input's dtype (float32 in
    :func:`~skobject2vec.nn.model.invariant_copy`, float64 in
    :func:`~skobject2vec.nn.model.widened_copy`); its ``weight`` holds the float32 weights."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__(weight.shape[1], weight.shape[0], dtype=torch.float32)
        with torch.no_grad():
            self.weight.copy_(weight)
            self.bias.copy_(bias)
        self.requires_grad_(False)
        self.products = _InvariantProduct(weight.detach().double(), bias.detach().double())

    @classmethod
    def of(cls, layer: nn.Linear) -> ChunkedLinear:
        return cls(layer.weight.detach(), layer.bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ weight.T + bias`` (batch, in_features) -> (batch, out_features), in ``x``'s dtype."""
        return self.products(x, x.dtype)


class ChunkedConv1d(nn.Module):
    """An inference copy of an ``nn.Conv1d`` (stride, dilation and groups 1) whose float32 outputs do not
    depend on the batch: the convolution as products of its windows, channels last, in fixed-shape
    chunks (``_InvariantProduct``). The windows are a strided view of the padded input, copied a
    chunk at a time, so no (positions x channels x width) matrix of the whole batch is built."""

    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        weight = conv.weight.detach()  # (out, channels, width) -> (out, width x channels), channels last
        self.width, self.padding = conv.kernel_size[0], cast(tuple[int, ...], conv.padding)[0]
        self.out_channels = conv.out_channels
        self.products = _InvariantProduct(weight.permute(0, 2, 1).reshape(self.out_channels, -1).double(),
                                          cast(torch.Tensor, conv.bias).detach().double())

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """The convolution of ``hidden`` (batch, channels, length), in its dtype."""
        if self.padding:
            hidden = nn.functional.pad(hidden, (self.padding, self.padding))
        batch, channels, length = hidden.shape
        flat = hidden.transpose(1, 2).contiguous().view(batch * length, channels)
        rows = batch * length - self.width + 1  # window r: the flat rows r .. r + width - 1
        windows = flat.as_strided((rows, self.width * channels), (channels, 1))
        out = self.products(windows, hidden.dtype)
        # the last width - 1 windows of each record run into the next record: not positions of the output
        out = torch.cat([out, out.new_zeros(self.width - 1, self.out_channels)]).view(batch, length, -1)
        return out[:, :length - self.width + 1].transpose(1, 2)


class WideActivation(nn.Module):
    """An inference copy of an elementwise activation other than relu (tanh): computed in float64 and
    rounded to its input's dtype.

    Why: torch computes a transcendental function with a vector routine for most elements and a scalar
    one for the rest of a tensor, and the two can differ in the last bit; which elements take which
    depends on the tensor's size (a width of 20 leaves 4 of each row's elements to the scalar loop at
    one record, fewer across a batch). In float64 both are exact to ~1e-16, so the float32 rounding is
    the same bits but within ~1e-16 of a rounding boundary. relu (a comparison) is exact as it is.
    """

    def __init__(self, activation: nn.Module):
        super().__init__()
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The activation of ``x``, computed in float64, in ``x``'s dtype."""
        return cast(torch.Tensor, self.activation(x.double())).to(x.dtype)

