"""Callbacks of the epoch loop, skorch-style.

The loop (``skobject2vec.training.EpochRun``) runs batches and computes
the epoch's metrics; everything else is a callback: early stopping with the best
weights restored, the weights of the epochs around the best one averaged (kept when
the validation data prefer them), the progress bar, the per-epoch log lines (which the CLI turns
into SageMaker's ``#quality_metric`` lines), a learning-rate schedule and
checkpoints.

Every estimator builds the default callbacks from its parameters
(``early_stopping_patience``, ``early_stopping_tolerance``, ``verbose``); the
``callbacks`` parameter adds more, or replaces a default of the same name::

    clf = Object2VecClassifier(callbacks=[("early_stopping", EarlyStopping(patience=2)),
                                          ("lr", LRScheduler(gamma=0.9))])
    clf.set_params(callbacks__early_stopping__patience=10)   # also in GridSearchCV grids

Callbacks are scikit-learn estimators as far as parameters go (``get_params``,
``set_params``, ``clone``), so a fit never changes the callback objects the user
passed: each fit works on clones.
"""

from __future__ import annotations

import collections
import copy
import logging
import math
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from sklearn.base import BaseEstimator, clone
from tqdm.auto import tqdm

__all__ = ["Callback", "EarlyStopping", "WeightAveraging", "ProgressBar", "EpochLog", "LRScheduler", "Checkpoint",
           "default_callbacks", "resolve_callbacks", "named_callbacks", "as_named_list", "DEFAULT_NAMES"]

logger = logging.getLogger("skobject2vec")


class Callback(BaseEstimator):
    """Base class: override the hooks you need. ``loop`` is the running ``skobject2vec.training.Loop``
    (``loop.net``, ``loop.optimizers``, ``loop.history``, ``loop.settings``, ``loop.main_process``;
    set ``loop.stop = True`` to end training after this epoch)."""

    # loop: a training.Loop (Any: importing it here would be an import cycle, see tests/test_architecture.py)
    def on_train_begin(self, loop: Any) -> None:
        pass

    def on_epoch_begin(self, loop: Any, epoch: int, n_batches: int | None) -> None:
        pass

    def on_batch_end(self, loop: Any, running_loss: float | None) -> None:
        pass

    def on_epoch_end(self, loop: Any, record: dict[str, Any]) -> None:
        """``record`` is the epoch's history entry (metrics, ``seconds``); callbacks may add keys."""

    def on_train_end(self, loop: Any) -> None:
        pass


class EarlyStopping(Callback):
    """Stop when the validation loss has not improved by ``tolerance`` for ``patience``
    epochs, and restore the weights of the best epoch (as SageMaker keeps the best model).

    Needs validation data (``validation_fraction`` or ``X_val``); without it, it does nothing.

    Parameters
    ----------
    patience : int, default=5
        Epochs without improvement before stopping.
    tolerance : float, default=0.001
        Smallest decrease of the validation loss that counts as an improvement.
    restore_best : bool, default=True
        Load the best epoch's weights at the end of training.
    """

    def __init__(self, patience=5, tolerance=0.001, restore_best=True):
        self.patience = patience
        self.tolerance = tolerance
        self.restore_best = restore_best

    def on_train_begin(self, loop):
        self._best_loss = self._reference = math.inf
        self._best_state, self._best_epoch, self._stale = None, None, 0

    def on_epoch_end(self, loop, record):
        key = f"validation:{loop.metric}"
        if key not in record:
            return
        val_loss = record[key]
        if val_loss < self._best_loss:
            self._best_loss, self._best_epoch = val_loss, record["epoch"]
            self._best_state = copy.deepcopy(loop.net.state_dict()) if self.restore_best else None
        if val_loss < self._reference - self.tolerance:
            self._reference, self._stale = val_loss, 0
        else:
            self._stale += 1
        if self._stale >= self.patience:
            loop.stop = True

    def on_train_end(self, loop):
        if loop.stop and self._stale >= self.patience:
            logger.info("early stopping after epoch %d: no improvement of validation:%s by %g for %d epochs",
                        loop.history[-1]["epoch"], loop.metric, self.tolerance, self.patience)
        if self._best_epoch is None:
            return
        if self._best_state is not None:
            loop.net.load_state_dict(self._best_state)
            loop.weights_epoch = self._best_epoch
            self._best_state = None
        for record in loop.history:
            record["best"] = record["epoch"] == self._best_epoch


class ProgressBar(Callback):
    """A tqdm bar per epoch (``verbose=1`` keeps each finished bar, with the validation
    metrics, as the epoch's line). Shown on the main process only."""

    def __init__(self, leave=True):
        self.leave = leave

    def on_epoch_begin(self, loop, epoch, n_batches):
        # Updated by hand, because iterating a bar closes it before the validation metrics are known.
        self._bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{loop.settings.epochs}", unit="batch",
                         leave=self.leave, disable=not loop.main_process, dynamic_ncols=True)

    def on_batch_end(self, loop, running_loss):
        if running_loss is not None:
            self._bar.set_postfix(loss=f"{running_loss:.4f}", refresh=False)
        self._bar.update()

    def on_epoch_end(self, loop, record):
        train = record.get(f"train:{loop.metric}")
        shown = {k.replace("validation:", "val_"): f"{v:.4f}" for k, v in record.items()
                 if k.startswith("validation:")}
        if shown:
            self._bar.set_postfix(loss=f"{train:.4f}", **shown)
        self._bar.close()


class EpochLog(Callback):
    """One log record per epoch on the ``skobject2vec`` logger (the CLI prints it as
    SageMaker metric lines); ``print_lines=True`` also prints it (``verbose=2``)."""

    def __init__(self, print_lines=False):
        self.print_lines = print_lines

    def on_epoch_end(self, loop, record):
        message = f"epoch {record['epoch']}/{loop.settings.epochs} " + " ".join(
            f"{k}={v:.6g}" for k, v in record.items() if k != "epoch" and isinstance(v, (int, float)))
        logger.info(message, extra={"epoch_record": record, "main_process": loop.main_process})
        if self.print_lines and loop.main_process:
            print(message, flush=True)


class LRScheduler(Callback):
    """Multiply the learning rate by ``gamma`` after every ``step_size`` epochs
    (``torch.optim.lr_scheduler.StepLR`` on every optimizer of the fit).

    Parameters
    ----------
    gamma : float, default=0.5
        Factor applied to the learning rate.
    step_size : int, default=1
        Epochs between two decays.
    """

    def __init__(self, gamma=0.5, step_size=1):
        self.gamma = gamma
        self.step_size = step_size

    def on_train_begin(self, loop):
        if not 0 < self.gamma <= 1 or int(self.step_size) < 1:
            raise ValueError(f"LRScheduler needs 0 < gamma <= 1 and step_size >= 1; got gamma={self.gamma!r}, "
                             f"step_size={self.step_size!r}.")
        self._schedulers = [torch.optim.lr_scheduler.StepLR(opt, step_size=int(self.step_size), gamma=self.gamma)
                            for opt in loop.optimizers]

    def on_epoch_end(self, loop, record):
        record["learning_rate"] = loop.optimizers[0].param_groups[0]["lr"]
        for scheduler in self._schedulers:
            scheduler.step()


class Checkpoint(Callback):
    """Write the network's weights (safetensors) after each epoch that improves the
    validation loss (every epoch without validation data) to ``path``.

    The file holds the state dict of :class:`~skobject2vec.nn.model.Object2VecNet`,
    for resuming or inspecting a long fit; the complete model is saved with
    ``estimator.save`` after the fit. (The fitted model is the best epoch's weights, or
    their average with the epochs around it where :class:`WeightAveraging` kept one.)
    Where a fit compares recipes (``auto_recipe_``), each recipe writes here as it trains,
    so the file holds the last improvement of whichever recipe improved last, which need
    not be the recipe kept.

    Parameters
    ----------
    path : str or Path
        The file to write (replaced at each checkpoint).
    """

    def __init__(self, path="checkpoint.safetensors"):
        self.path = path

    def on_train_begin(self, loop):
        self._best = math.inf

    def on_epoch_end(self, loop, record):
        if not loop.main_process:
            return
        loss = record.get(f"validation:{loop.metric}", -math.inf)
        if loss > self._best:
            return
        self._best = loss
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in loop.net.state_dict().items()}, str(tmp))
        tmp.replace(path)  # atomic: a killed fit leaves the previous checkpoint whole
        record["checkpoint"] = True


class WeightAveraging(Callback):
    """Average the weights of the epochs around the best one, and keep the average when the
    validation data score it higher than the weights the fit ends with (stochastic weight
    averaging over epochs, checked on the validation data).

    The average holds the best epoch (lowest validation loss), the ``before`` epochs before it
    and every epoch after it until training ends (early stopping's patience: up to 5 more).
    It is kept when it scores better by the estimator's ``score``: a classifier's accuracy
    (SageMaker's tuning objective, ``validation:accuracy``; on a tie, the lower cross-entropy),
    a regressor's mean squared error. A classifier's cross-entropy turns up within an epoch or
    two of its best while its accuracy still improves, and the average's probabilities are
    flatter: judged by cross-entropy alone it was never kept on the sets below. Measured with
    the defaults, 3 seeds (``benchmarks/bench_defaults.py``, ``bench_kg.py``): STS-B in 3
    classes, test accuracy 0.640 -> 0.657; digit pairs 0.881 -> 0.883; filtered test MRR
    Nations 0.764 -> 0.772, Kinships 0.755 -> 0.774, UMLS 0.859 -> 0.869; STS-B regression
    and MovieLens unchanged (the average not kept); Adam at ``learning_rate=0.01`` on
    MovieLens 0.889 -> 0.878 RMSE. Without
    validation data nothing is averaged. The outcome is in the last ``history_`` entry,
    ``"weight_averaging"``: the epochs averaged, the average's validation scores and whether
    it was kept; ``verbose=2`` prints it after the epoch lines. ``callbacks=[("weight_averaging", None)]`` turns it off.

    Parameters
    ----------
    before : int, default=2
        Epochs before the best one that join the average.
    """

    def __init__(self, before=2):
        self.before = before

    def on_train_begin(self, loop: Any) -> None:
        self._recent: collections.deque = collections.deque(maxlen=self.before)  # the last epochs' weights
        self._sum: dict[str, torch.Tensor] | None = None
        self._epochs: list[int] = []
        self._best = math.inf

    def on_epoch_end(self, loop: Any, record: dict[str, Any]) -> None:
        loss = record.get(f"validation:{loop.metric}")
        if loss is None or loop.validate is None:
            return
        with torch.no_grad():
            state = {k: v.detach().clone() for k, v in loop.net.state_dict().items() if v.is_floating_point()}
            if loss < self._best:  # a new best: the average starts again from the epochs before it
                self._best = loss
                self._sum = {k: v.clone() for k, v in state.items()}
                for earlier in self._recent:
                    for k, v in earlier.items():
                        self._sum[k].add_(v)
                self._epochs = list(range(record["epoch"] - len(self._recent), record["epoch"] + 1))
            elif self._sum is not None:
                for k, v in state.items():
                    self._sum[k].add_(v)
                self._epochs.append(record["epoch"])
            if self.before:
                self._recent.append(state)

    def on_train_end(self, loop: Any) -> None:
        summed, self._sum = self._sum, None
        self._recent.clear()
        if summed is None or len(self._epochs) < 2:
            return
        with torch.no_grad():
            # the weights loaded now: the best epoch's where early stopping restored them, else the last epoch's;
            # that epoch's validation scores are in the history (no second pass over the validation data)
            current = _epoch_scores(loop)
            kept = {k: v.detach().clone() for k, v in loop.net.state_dict().items() if k in summed}
            loop.net.load_state_dict({k: v.div_(len(self._epochs)) for k, v in summed.items()}, strict=False)
            scores = loop.validate()
            better = _rank(scores, loop.metric) < _rank(current, loop.metric)
            if not better:
                loop.net.load_state_dict(kept, strict=False)
        loop.history[-1]["weight_averaging"] = {"epochs": list(self._epochs),
                                                **{f"validation:{k}": v for k, v in scores.items()}, "kept": better}
        line = (f"weights of epochs {self._epochs[0]}-{self._epochs[-1]} averaged: validation "
                f"{_scores_text(scores)} against {_scores_text(current)}; {'kept' if better else 'not kept'}")
        logger.info(line)
        if getattr(loop.settings, "verbose", 0) > 1 and loop.main_process:  # with the epoch lines (EpochLog)
            print(line)


def _epoch_scores(loop: Any) -> dict[str, float]:
    """The validation scores of the epoch whose weights the network holds (``loop.weights_epoch``)."""
    epoch = loop.weights_epoch if loop.weights_epoch is not None else loop.history[-1]["epoch"]
    record = next(r for r in loop.history if r["epoch"] == epoch)
    return {key.split(":", 1)[1]: value for key, value in record.items() if key.startswith("validation:")}


def _scores_text(scores: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4g}" for name, value in scores.items())


def _rank(scores: dict[str, float], metric: str) -> tuple[float, float]:
    """Lower is better: a classifier's accuracy first (negated), then the loss."""
    return -scores.get("accuracy", 0.0), scores[metric]


#: Names of the callbacks every fit has, in the order they run; a user callback of the same
#: name replaces the default, ``(name, None)`` turns it off.
DEFAULT_NAMES = ("early_stopping", "weight_averaging", "lr_scheduler", "progress_bar", "epoch_log")


def default_callbacks(settings) -> list[tuple[str, Callback | None]]:
    """The callbacks a fit has without the ``callbacks`` parameter, from its settings (None: off)."""
    return list(zip(DEFAULT_NAMES, (
        EarlyStopping(patience=settings.patience, tolerance=settings.tolerance),
        WeightAveraging(),
        LRScheduler(gamma=settings.learning_rate_decay) if settings.learning_rate_decay < 1 else None,
        ProgressBar(leave=settings.verbose == 1) if settings.verbose >= 1 else None,
        EpochLog(print_lines=settings.verbose > 1),
    )))


def as_named_list(callbacks) -> list[tuple[str, Callback | None]]:
    """``callbacks`` as (name, callback) pairs: a bare callback is named after its class."""
    named = []
    for item in callbacks or ():
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            name, callback = item
        else:
            name, callback = type(item).__name__, item
        if callback is not None and not isinstance(callback, Callback):
            raise TypeError(f"callbacks: {name!r} is a {type(callback).__name__}, not a skobject2vec.callbacks."
                            f"Callback (or None to turn a default off).")
        named.append((name, callback))
    names = [n for n, _ in named]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"callbacks: the name {duplicated[0]!r} is used twice; give each callback its own name.")
    return named


def resolve_callbacks(callbacks, settings) -> list[Callback]:
    """The callbacks of one fit, in order: the defaults (each replaced by a user callback of
    its name, or turned off by ``(name, None)``), then the user's other callbacks. Clones,
    so a fit never changes the user's objects."""
    user = dict(as_named_list(callbacks))
    defaults = default_callbacks(settings)
    chosen = [user.pop(name, default) for name, default in defaults]
    chosen += list(user.values())
    # the defaults are built for this fit: only the user's objects need a clone (sklearn's clone reads each
    # estimator's signature, 0.5 ms of a 200-record fit's 6 ms for the four defaults)
    fresh = {id(default) for _, default in defaults}
    return [c if id(c) in fresh else clone(c) for c in chosen if c is not None]


def named_callbacks(callbacks) -> dict:
    """``{name: callback}`` of the ``callbacks`` parameter (for ``callbacks__name__param``).

    Lenient (``get_params`` must not raise, whatever was set): a value that is not a
    list of callbacks gives ``{}``; ``fit`` reports it (:func:`resolve_callbacks`).
    """
    if not isinstance(callbacks, (list, tuple)):
        return {}
    try:
        return {name: cb for name, cb in as_named_list(callbacks) if cb is not None}
    except (TypeError, ValueError):
        return {}
