"""Batch-invariant float32 matrix products for inference: the same bits for a row whatever its batch.

A float32 ``x @ W.T`` rounds each output by the order in which BLAS sums its terms, and BLAS picks
that order (its blocking, its kernels, a vector routine for one row) by the shape of the call, and
differently on each CPU; so a record's prediction would move with the records beside it.
:func:`~skobject2vec.nn.model.widened_copy` avoids that by computing in float64, at twice the cost
of the products. :class:`ChunkedLinear` keeps float32 and fixes the shape instead: every product it
computes is one call of the same shape, ``(rows of a chunk) x in_features x out_features``, the last
chunk padded with zero rows. A row's output then depends only on the row and on where it sits in its
chunk; whether the position matters is a property of the CPU's kernels, which the layer measures
(:func:`rows_independent`) before it relies on it, once per thread count, falling back to float64
where it does matter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
from torch import nn

#: Rows per product: full chunks of CHUNK_ROWS, the remainder in chunks of TAIL_ROWS where this CPU's
#: kernels give those the same bits (one record alone costs a 16-row product, not a 256-row one).
CHUNK_ROWS, TAIL_ROWS = 256, 16

Product = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _addmm(bias: torch.Tensor, rows: torch.Tensor, weight_t: torch.Tensor) -> torch.Tensor:
    # a fresh copy: every call then reads rows at the allocator's alignment (some BLAS paths depend on it)
    return torch.addmm(bias, rows.clone(), weight_t)


def chunked_product(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor, tail: int | None,
                    product: Product = _addmm) -> torch.Tensor:
    """``bias + x @ weight_t`` computed in products of CHUNK_ROWS rows (and, with ``tail``, the rows
    after the last full chunk in products of ``tail`` rows), short chunks padded with zero rows."""
    n, chunk = x.shape[0], CHUNK_ROWS
    full = n - n % chunk
    pieces = [product(bias, x[start:start + chunk], weight_t) for start in range(0, full, chunk)]
    if full < n:
        step = tail or chunk
        rest = x[full:]
        padded = torch.cat([rest, rest.new_zeros((-len(rest)) % step, rest.shape[1])])
        pieces += [product(bias, padded[start:start + step], weight_t) for start in range(0, len(padded), step)]
    return torch.cat(pieces)[:n]


def rows_independent(weight_t: torch.Tensor, bias: torch.Tensor, product: Product = _addmm
                     ) -> tuple[bool, bool]:
    """Whether, at the current thread count, a row's output of :func:`chunked_product` is the same bits
    (1) at every position of a CHUNK_ROWS chunk and (2) also in a TAIL_ROWS chunk.

    Measured with random rows: each row at several positions (the chunk rolled by rows that move every
    row across the kernels' tiles), and every row in tail chunks. Different summation orders give
    different bits for most of 256 x out_features random outputs, so a kernel that sums in another
    order at some position does not pass by chance.
    """
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(CHUNK_ROWS, weight_t.shape[0], generator=generator, dtype=weight_t.dtype)
    reference = product(bias, x, weight_t)
    for shift in (1, 5, 7, 100):
        if not torch.equal(product(bias, x.roll(shift, 0), weight_t), reference.roll(shift, 0)):
            return False, False
    tails = torch.cat([product(bias, x[start:start + TAIL_ROWS], weight_t)
                       for start in range(0, CHUNK_ROWS, TAIL_ROWS)])
    return True, torch.equal(tails, reference)


class ChunkedLinear(nn.Module):
    """An inference copy of an ``nn.Linear`` whose float32 outputs do not depend on the batch.

    Takes and returns float64 (the dtype of :func:`~skobject2vec.nn.model.widened_copy`'s other
    layers; float32 values pass through float64 exactly), computes in float32 chunks
    (:func:`chunked_product`) where :func:`rows_independent` holds at the current thread count, and in
    float64 otherwise (then the float32 rounding of a near-exact product, as the rest of the copy).
    """

    def __init__(self, layer: nn.Linear):
        super().__init__()
        weight, bias = layer.weight.detach(), layer.bias.detach()
        self.weight_t = weight.float().t().contiguous()
        self.bias = bias.float().clone()
        self.wide_weight_t, self.wide_bias = weight.double().t().contiguous(), bias.double().clone()
        self._verdicts: dict[int, tuple[bool, bool]] = {}  # thread count -> rows_independent
        self._lock = threading.Lock()

    def verdict(self) -> tuple[bool, bool]:
        """:func:`rows_independent` at the current thread count, measured once per count."""
        threads = torch.get_num_threads()
        with self._lock:
            if threads not in self._verdicts:
                with torch.no_grad():
                    self._verdicts[threads] = rows_independent(self.weight_t, self.bias)
            return self._verdicts[threads]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positions_free, tails_agree = self.verdict()
        if not positions_free:
            return torch.addmm(self.wide_bias, x.double(), self.wide_weight_t)
        rows = x.float()
        return chunked_product(rows, self.weight_t, self.bias, TAIL_ROWS if tails_agree else None).to(x.dtype)
