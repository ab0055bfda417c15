"""Dynamic micro-batching: concurrent requests share one forward pass.

Requests are parsed on the event loop and queued. A single worker task takes
everything queued, waits a short window while more requests are still being
received, and hands the lot to one inference thread, grouped by what can share
a forward pass (the mode and the truncation lengths). While that thread runs,
new requests queue up and form the next batch, so batches grow with the load
and a lone request is not delayed by the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..data.batching import PairData, Ragged
from .protocol import ParsedRequest

__all__ = ["MicroBatcher", "concat_pairs"]

logger = logging.getLogger("skobject2vec.serving")


def _concat_ragged(parts: list[Ragged]) -> Ragged:
    lengths = np.concatenate([p.lengths for p in parts])
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Ragged(np.concatenate([p.values for p in parts]), offsets)


def concat_pairs(parts: list[PairData]) -> PairData:
    """One :class:`PairData` holding the records of ``parts`` in order (all with the same sides)."""
    if len(parts) == 1:
        return parts[0]
    return PairData(*(None if getattr(parts[0], f) is None else _concat_ragged([getattr(p, f) for p in parts])
                      for f in ("in0", "in1")))


@dataclass
class _Job:
    request: ParsedRequest
    future: asyncio.Future


class MicroBatcher:
    """Queue requests and run them in shared forward passes on one inference thread.

    Parameters
    ----------
    run : callable
        ``run(side, max_lens, pairs) -> ndarray`` of one row per record; called on
        the inference thread with the concatenated records of compatible requests.
    max_records : int
        Records gathered for one call of ``run`` (it may split them further).
    window_s : float
        How long to wait for requests that are still being received before running.
    """

    def __init__(self, run: Callable, *, max_records: int = 2048, window_s: float = 0.002):
        self._run = run
        self.max_records = max_records
        self.window_s = window_s
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skobject2vec-inference")
        self._receiving = 0
        #: Forward passes run and records they held, so far (for tests and logs).
        self.batches_run = 0
        self.records_run = 0

    @contextlib.contextmanager
    def receiving(self):
        """Mark a request whose body is being read: the worker waits (up to the window) for it."""
        self._receiving += 1
        try:
            yield
        finally:
            self._receiving -= 1

    def start(self) -> None:
        if self._worker is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._work(), name="skobject2vec-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        self._executor.shutdown(wait=True)

    async def submit(self, request: ParsedRequest) -> np.ndarray:
        """The rows of ``request``'s records, computed together with concurrent requests."""
        self.start()
        future = asyncio.get_running_loop().create_future()
        assert self._queue is not None  # made by start()
        self._queue.put_nowait(_Job(request, future))
        return await future

    async def _gather(self) -> list[_Job]:
        """The next batch: the first queued job, everything behind it, and what arrives within the window."""
        loop = asyncio.get_running_loop()
        assert self._queue is not None  # made by start(), which starts this worker
        jobs = [await self._queue.get()]
        await asyncio.sleep(0)  # let requests whose bytes already arrived finish parsing
        n_records = jobs[0].request.n_records
        deadline = loop.time() + self.window_s
        while n_records < self.max_records:
            if not self._queue.empty():
                job = self._queue.get_nowait()
            else:
                remaining = deadline - loop.time()
                if self._receiving == 0 or remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            jobs.append(job)
            n_records += job.request.n_records
        return [job for job in jobs if not job.future.done()]  # a client may have gone away

    def _run_groups(self, groups: dict) -> dict:
        """On the inference thread: one ``run`` per group; results or the exception per group."""
        results = {}
        for key, jobs in groups.items():
            side, max_lens = key
            try:
                results[key] = self._run(side, max_lens, concat_pairs([job.request.pairs for job in jobs]))
            except Exception as exc:  # reported to the requests of this group only
                logger.exception("inference failed for a batch of %d requests", len(jobs))
                results[key] = exc
        return results

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._gather()
            if not jobs:
                continue
            groups = defaultdict(list)
            for job in jobs:
                groups[(job.request.side, job.request.max_lens)].append(job)
            results = await loop.run_in_executor(self._executor, self._run_groups, groups)
            self.batches_run += 1
            self.records_run += sum(job.request.n_records for job in jobs)
            for key, group in groups.items():
                out = results[key]
                start = 0
                for job in group:
                    stop = start + job.request.n_records
                    if not job.future.done():
                        if isinstance(out, Exception):
                            job.future.set_exception(out)
                        else:
                            job.future.set_result(out[start:stop])
                    start = stop
