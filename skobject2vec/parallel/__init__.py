"""Scale out: streamed and data-parallel (torchrun) training, and distributed search."""

from .search import TorchThreads, dask_search
from .torchrun import fit_stream, is_main_process, rank_batch_size

__all__ = ["fit_stream", "is_main_process", "rank_batch_size", "dask_search", "TorchThreads"]
