"""Which torch device a fit, a load or a server runs on: the ``device`` parameter resolved once."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None) -> torch.device:
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
    if resolved.type not in ("cpu", "cuda") and not _accelerator_available(resolved.type):
        raise ValueError(f"device={device!r} was asked for but {resolved.type} is not available on this machine; "
                         f"use device='auto' or 'cpu'.")
    return resolved


def _accelerator_available(kind: str) -> bool:
    """Whether torch can use an accelerator of this type here (mps, xpu, ...)."""
    if kind == "mps":
        return bool(torch.backends.mps.is_available())
    module = getattr(torch, kind, None)
    return bool(getattr(module, "is_available", lambda: False)())
