"""The loaded model behind the endpoint: pair scores and encoder embeddings.

It computes exactly what the estimator computes in process (``predict_proba``
for a classifier, ``predict`` for a regressor, ``transform`` on single-side
records), through the same :mod:`skobject2vec.training` functions, only with
truncation lengths chosen per call: a request's ``infer_max_seqlens`` gets its
own :class:`~skobject2vec.Batcher` and never changes the shared model.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from typing import cast

import numpy as np
import torch

from ..data.batching import Batcher, PairData, Ragged
from ..inference import OutputSpec, embed, predict_outputs, task_of
from ..threads import torch_threads

__all__ = ["ModelRunner", "preferred_mode_from_env", "PREFERRED_MODES"]

logger = logging.getLogger("skobject2vec.serving")

PREFERRED_MODES = ("classification", "embedding")
PREFERRED_MODE_ENV = "INFERENCE_PREFERRED_MODE"


def preferred_mode_from_env(environ=os.environ) -> str | None:
    """SageMaker's ``INFERENCE_PREFERRED_MODE`` (``classification`` or ``embedding``), or None."""
    value = environ.get(PREFERRED_MODE_ENV, "").strip().lower()
    if not value:
        return None
    if value not in PREFERRED_MODES:
        raise ValueError(f"{PREFERRED_MODE_ENV}={environ[PREFERRED_MODE_ENV]!r} is not valid; expected "
                         f"'classification' or 'embedding' (or leave it unset).")
    return value


class ModelRunner:
    """Run a fitted estimator's network on validated records.

    Parameters
    ----------
    estimator : Object2VecClassifier or Object2VecRegressor
        Fitted, as returned by :func:`skobject2vec.load`.
    preferred_mode : {"classification", "embedding"} or None
        SageMaker's ``INFERENCE_PREFERRED_MODE``. SageMaker uses it to choose which
        inference network goes onto a scarce GPU. Here one network serves both modes
        (the pair network contains the encoders), so nothing has to be left off the
        device; the preferred path is warmed up first (CUDA kernels, allocator
        pools), so its first request is not the slow one. Both modes always work.
    """

    def __init__(self, estimator, preferred_mode: str | None = None):
        self.estimator = estimator
        self.net = estimator.net_.eval()
        self.device = next(self.net.parameters()).device
        self.task = task_of(estimator)
        self.spec = OutputSpec.of(estimator)
        self.max_lens = cast("tuple[int, int]", tuple(int(n) for n in estimator.max_seq_lens_))
        self.preferred_mode = preferred_mode
        self._batcher = lru_cache(maxsize=64)(self._make_batcher)
        self._widths: dict = {}

    @property
    def n_outputs(self) -> int:
        return len(self.estimator.classes_) if self.task == "classification" else 1

    def output_width(self, side: int | None) -> int:
        """Numbers per record in a reply: scores for pairs (``side=None``), else the embedding width."""
        if side not in self._widths:
            one = Ragged(np.zeros(1, dtype=np.int64), np.array([0, 1], dtype=np.int64))
            self._widths[side] = int(self.run(side, self.max_lens, PairData(one, one)).shape[1])
        return self._widths[side]

    def _make_batcher(self, max_lens: tuple[int, int]) -> Batcher:
        return Batcher(max_lens, self.estimator.vocab_sizes_, self.device)

    def run(self, side: int | None, max_lens: tuple[int, int], pairs: PairData) -> np.ndarray:
        """Scores (n, n_classes) or (n, 1) for pairs (``side=None``); embeddings (n, enc_dim) for one side."""
        batcher = self._batcher(tuple(max_lens))
        with torch_threads(self.estimator._inference_threads()), torch.inference_mode():
            if side is not None:
                return embed(self.net, pairs.in0 if side == 0 else pairs.in1, side, batcher)
            if self.task == "classification":  # as Object2VecClassifier.predict_proba
                return np.exp(predict_outputs(self.net, pairs, batcher, self.spec, log=True))
            return predict_outputs(self.net, pairs, batcher, self.spec)[:, None]  # as Object2VecRegressor.predict

    def warm_up(self) -> None:
        """One tiny forward pass per mode, the preferred mode first."""
        one = Ragged(np.zeros(1, dtype=np.int64), np.array([0, 1], dtype=np.int64))
        modes = ["classification", "embedding"]
        if self.preferred_mode == "embedding":
            modes.reverse()
        for mode in modes:
            for side in ([None] if mode == "classification" else [0, 1]):
                self._widths[side] = int(self.run(side, self.max_lens, PairData(one, one)).shape[1])
        if self.preferred_mode:
            logger.info("%s=%s: that path was warmed up first on %s; both modes are served",
                        PREFERRED_MODE_ENV, self.preferred_mode, self.device)
