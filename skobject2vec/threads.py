"""How many intra-op torch threads a fit, a prediction or a server worker uses.

Why a policy: torch's intra-op threads busy-wait between the small operations of a
training step, so next to any other busy process (another fit, a notebook, a server)
they spin against it and a fit slows down several times, while with one thread it does
not. One thread loses nothing where a step's operations are small (pooled and bilstm
encoders: the same speed with 1 or 2 threads on a quiet machine); hcnn's convolutions are
large enough to gain from more, even beside a busy process. Figures: ``docs/performance.rst``.

The estimators' ``n_threads`` parameter chooses: ``"auto"`` applies the rule above,
an int sets the count, ``None`` leaves torch's setting (``torch.set_num_threads``)
alone. The count is set for the duration of the call and restored afterwards, also
when the call raises, so the caller's own setting is never changed behind its back.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator

import torch

__all__ = ["resolve_threads", "torch_threads"]

#: Encoders whose operations are large enough to gain from more than one thread.
MULTI_THREAD_NETWORKS = ("hcnn",)

_LOCK = threading.Lock()
_active = 0  # calls inside torch_threads now, in any Python thread
_saved: int | None = None  # the count before the first of them


def resolve_threads(n_threads: int | str | None, networks: Iterable[str]) -> int | None:
    """The thread count for a network with encoders ``networks`` (None: torch's own setting)."""
    if n_threads is None:
        return None
    if n_threads == "auto":
        return None if any(n in MULTI_THREAD_NETWORKS for n in networks) else 1
    return int(n_threads)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """``torch.set_num_threads(n)`` for the block, the previous count restored after it (``n`` None: no change).

    The thread pool is per process: when calls overlap in several Python threads (a
    threaded grid search, a server's pool), the count from before the first one is
    restored when the last one ends, and they run concurrently meanwhile.
    """
    global _active, _saved
    if n is None:
        yield
        return
    with _LOCK:
        if _active == 0:
            _saved = torch.get_num_threads()
        _active += 1
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    try:
        yield
    finally:
        with _LOCK:
            _active -= 1
            if _active == 0 and torch.get_num_threads() != _saved:
                assert _saved is not None  # set when _active went from 0 to 1
                torch.set_num_threads(_saved)
