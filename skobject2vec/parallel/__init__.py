"""Scale out: streamed and data-parallel (torchrun) training, and distributed search."""

from typing import Any

from . import search
from .search import dask_search
from .torchrun import fit_stream, is_main_process, rank_batch_size

__all__ = ["fit_stream", "is_main_process", "rank_batch_size", "dask_search", "TorchThreads"]


def __getattr__(name: str) -> Any:
    # TorchThreads is built on first use (its dask base class is dear to import): see search._torch_threads_class
    if name == "TorchThreads":
        return search.TorchThreads
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
