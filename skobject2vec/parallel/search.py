"""Distributed hyperparameter search: a scikit-learn search on a dask cluster.

:func:`dask_search` runs ``GridSearchCV`` (or any search) through joblib's dask
backend, with one torch thread per worker (:class:`TorchThreads`).
"""

from __future__ import annotations

import functools
from typing import Any

import torch

__all__ = ["dask_search", "TorchThreads"]  # noqa: F822  # TorchThreads: from __getattr__, built on first use


def _worker_plugin_base() -> type:
    try:
        from distributed.diagnostics.plugin import WorkerPlugin
    except ImportError:  # dask is optional: the class still imports, and dask_search says what is missing
        return object
    return WorkerPlugin


@functools.cache
def _torch_threads_class() -> type:
    """:class:`TorchThreads`, built on first use: its base, dask's ``WorkerPlugin``, costs importing
    ``distributed`` (0.4 s on two cores), which ``import skobject2vec`` must not pay where dask is installed."""

    class TorchThreads(_worker_plugin_base()):  # type: ignore[misc]  # a base chosen at run time: mypy cannot follow
        """Dask worker plugin: torch uses ``n_threads`` threads in every worker process.

        Workers with one thread each otherwise still run torch's intra-op pool on every
        core, so N workers oversubscribe the machine N times over.
        """

        name = "skobject2vec-torch-threads"

        def __init__(self, n_threads: int = 1):
            self.n_threads = int(n_threads)

        def setup(self, worker=None):
            torch.set_num_threads(self.n_threads)

    # pickled by reference (dask sends it to the workers): the module's __getattr__ finds it by that name
    TorchThreads.__module__, TorchThreads.__qualname__ = __name__, "TorchThreads"
    return TorchThreads


def __getattr__(name: str) -> Any:
    if name == "TorchThreads":
        return _torch_threads_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def dask_search(search, X, y=None, *, client=None, torch_threads: int = 1, **fit_params):
    """Fit a scikit-learn search (e.g. ``GridSearchCV``) on a dask cluster.

    The candidates' fits go to the cluster's workers through joblib's dask backend;
    each worker runs torch with ``torch_threads`` threads (see :class:`TorchThreads`).

    Parameters
    ----------
    search : GridSearchCV, RandomizedSearchCV or any estimator using joblib
    X, y, **fit_params
        Passed to ``search.fit``.
    client : dask.distributed.Client, optional
        Default: the current client (``dask.distributed.get_client()``).

    Returns
    -------
    search
        Fitted.
    """
    try:
        import joblib
        from dask.distributed import get_client
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("dask_search needs dask.distributed: pip install 'dask[distributed]'") from exc
    client = client if client is not None else get_client()
    client.register_plugin(_torch_threads_class()(torch_threads))
    with joblib.parallel_backend("dask", client=client):
        return search.fit(X, y, **fit_params)
