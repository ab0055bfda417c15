"""The fitted state of an estimator, declared once.

:class:`FitResult` is what every fit produces (in memory, streamed, torchrun, ``partial_fit``) and
what :func:`apply_result` sets on the estimator, at the end of a successful fit only. The artifact
code, pickling and the streamed path write and read it through :meth:`FitResult.to_config` and
:meth:`FitResult.from_config`, so that a fitted attribute cannot be known in one place and lost in another.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .nn.model import Object2VecNet

if TYPE_CHECKING:
    import numpy.typing as npt


__all__ = ["ClassTargets", "ScoreTargets", "targets_of", "FitResult", "apply_result",
           "fitted_state_restored_on_error", "MAX_SEQ_LEN"]

#: Longest sequence a side keeps when ``enc*_max_seq_len`` is not given (longer ones are truncated).
MAX_SEQ_LEN = 5000


@dataclass(frozen=True)
class ClassTargets:
    """Classification targets: the classes (``classes_``) and label encoding."""

    classes: np.ndarray

    @property
    def n_outputs(self) -> int:
        return len(self.classes)

    @property
    def negative_index(self) -> int | None:
        """Index of class 0, the label of sampled negatives (None without it)."""
        if self.classes.dtype.kind not in "iufb":  # string labels hold no 0 (old numpy warns on the comparison)
            return None
        found = np.flatnonzero(self.classes == 0)
        return int(found[0]) if found.size else None

    def first_unknown(self, y: npt.ArrayLike) -> int | None:
        """Position of the first label that is not a class, or None."""
        y = np.asarray(y)
        index = np.clip(np.searchsorted(self.classes, y), 0, len(self.classes) - 1)
        unknown = np.flatnonzero(self.classes[index] != y)
        return int(unknown[0]) if unknown.size else None

    def transform(self, y: npt.ArrayLike, what: str = "y_val") -> np.ndarray:
        """Class indices of labels; a label not among the classes is an error naming ``what[i]``."""
        y = np.asarray(y)
        bad = self.first_unknown(y)
        if bad is not None:
            raise ValueError(f"{what}[{bad}] = {y[bad].item()!r} is not one of the training classes "
                             f"{self.classes.tolist()}.")
        return np.searchsorted(self.classes, y).astype(np.int64)

    def attributes(self) -> dict[str, Any]:
        return {"classes_": self.classes}

    def to_config(self) -> dict[str, Any]:
        """The classes as JSON (their dtype kept): ``{"classes": {"dtype", "values"}}``."""
        classes = np.asarray(self.classes)
        kind = classes.dtype.kind
        if kind in "iubU":
            return {"classes": {"dtype": classes.dtype.str, "values": classes.tolist()}}
        if kind == "f":
            return {"classes": {"dtype": classes.dtype.str, "values": [float(v) for v in classes]}}
        values = classes.tolist()
        try:
            json.dumps(values)
        except TypeError as exc:
            raise ValueError(f"classes_ of type {type(values[0]).__name__} cannot be stored in a safe artifact; "
                             f"use string or numeric labels (or pickle/joblib).") from exc
        return {"classes": {"dtype": "object", "values": values}}

    @classmethod
    def from_config(cls, fitted: dict[str, Any]) -> ClassTargets:
        spec = fitted["classes"]
        if spec["dtype"] == "object":
            classes = np.empty(len(spec["values"]), dtype=object)
            classes[:] = spec["values"]
            return cls(classes)
        return cls(np.asarray(spec["values"], dtype=np.dtype(spec["dtype"])))


@dataclass(frozen=True)
class ScoreTargets:
    """Regression targets: standardised for training, reported in the user's units."""

    mean: float = 0.0
    scale: float = 1.0
    n_outputs = 1
    negative_index = None  # regression samples no negatives

    def transform(self, y: npt.ArrayLike, what: str = "y_val") -> np.ndarray:
        return (np.asarray(y, dtype=np.float64) - self.mean) / self.scale

    def attributes(self) -> dict[str, Any]:
        return {"y_mean_": self.mean, "y_scale_": self.scale}

    def to_config(self) -> dict[str, Any]:
        return {"y_mean": float(self.mean), "y_scale": float(self.scale)}

    @classmethod
    def from_config(cls, fitted: dict[str, Any]) -> ScoreTargets:
        return cls(fitted["y_mean"], fitted["y_scale"])


def targets_of(estimator: Any) -> ClassTargets | ScoreTargets:
    """The fitted targets of ``estimator`` (``classes_``, or ``y_mean_`` and ``y_scale_``)."""
    if hasattr(estimator, "classes_"):
        return ClassTargets(estimator.classes_)
    return ScoreTargets(estimator.y_mean_, estimator.y_scale_)



@dataclass(frozen=True)
class FitResult:
    """The fitted state, declared once: what a successful fit hands to the estimator, what an
    artifact stores (:meth:`to_config`, :meth:`from_config`) and what :meth:`of` reads back.

    Every public fitted attribute of the estimators comes from :meth:`attributes`, so a fit
    path, ``save``/``load`` and pickling cannot disagree on the list.
    """

    net: Object2VecNet
    vocab_sizes: tuple[int, int]
    max_lens: tuple[int, int]
    history: list[dict[str, Any]]
    targets: ClassTargets | ScoreTargets
    #: Streamed fits: the number of training records (``n_records_``); None in memory.
    n_records: int | None = None
    #: scikit-learn's input attributes (``n_features_in_``, ``feature_names_in_``) where the input had
    #: columns; set by input validation for in-memory fits, carried here by artifacts.
    n_features_in: int | None = None
    feature_names_in: tuple[str, ...] | None = None
    #: In-memory fits that compared recipes on their validation split (``auto_recipe_``; see
    #: :func:`candidate_plans`): the recipe kept, the validation losses, the settings it fixed.
    recipe: dict[str, Any] | None = None

    def attributes(self) -> dict[str, Any]:
        state = {"net_": self.net, "vocab_sizes_": tuple(self.vocab_sizes), "max_seq_lens_": tuple(self.max_lens),
                 "history_": self.history, "n_epochs_": len(self.history), **self.targets.attributes()}
        if self.n_records is not None:
            state["n_records_"] = self.n_records
        if self.n_features_in is not None:
            state["n_features_in_"] = self.n_features_in
        if self.feature_names_in is not None:
            state["feature_names_in_"] = np.asarray(self.feature_names_in, dtype=object)
        if self.recipe is not None:
            state["auto_recipe_"] = self.recipe
        return state

    @classmethod
    def of(cls, estimator: Any) -> FitResult:
        """The fitted state of a fitted estimator."""
        names = getattr(estimator, "feature_names_in_", None)
        n_records = getattr(estimator, "n_records_", None)
        n_features = getattr(estimator, "n_features_in_", None)
        return cls(estimator.net_, tuple(estimator.vocab_sizes_), tuple(estimator.max_seq_lens_),
                   estimator.history_, targets_of(estimator), None if n_records is None else int(n_records),
                   None if n_features is None else int(n_features), None if names is None else tuple(names),
                   getattr(estimator, "auto_recipe_", None))

    def to_config(self) -> dict[str, Any]:
        """Everything but the network, as JSON (an artifact's ``"fitted"`` section)."""
        fitted = {"vocab_sizes": list(self.vocab_sizes), "max_seq_lens": list(self.max_lens),
                  "history": self.history, "n_epochs": len(self.history), **self.targets.to_config()}
        for key in ("n_records", "n_features_in"):
            if getattr(self, key) is not None:
                fitted[key] = getattr(self, key)
        if self.feature_names_in is not None:
            fitted["feature_names_in"] = [str(name) for name in self.feature_names_in]
        if self.recipe is not None:
            fitted["auto_recipe"] = self.recipe
        return fitted

    @classmethod
    def from_config(cls, net: Object2VecNet, fitted: dict[str, Any]) -> FitResult:
        """The fitted state an artifact's ``"fitted"`` section describes, around ``net``."""
        targets = ClassTargets.from_config(fitted) if "classes" in fitted else ScoreTargets.from_config(fitted)
        names = fitted.get("feature_names_in")
        return cls(net, tuple(fitted["vocab_sizes"]), tuple(fitted["max_seq_lens"]), fitted["history"], targets,
                   fitted.get("n_records"), fitted.get("n_features_in"), None if names is None else tuple(names),
                   fitted.get("auto_recipe"))


def apply_result(estimator: Any, result: FitResult, *, from_records: bool = False) -> Any:
    """Set the fitted attributes, all at once; records read from files have no feature columns."""
    if from_records:
        for attr in ("n_features_in_", "feature_names_in_"):
            vars(estimator).pop(attr, None)
    vars(estimator).update(result.attributes())
    return estimator


@contextlib.contextmanager
def fitted_state_restored_on_error(estimator: object) -> Iterator[None]:
    """A fit that fails leaves the previous fitted state (``classes_``, ``net_``, ...) as it was,
    so a failed refit never pairs new classes with the old network (input checks set
    ``n_features_in_`` early; this undoes that too)."""
    def fitted() -> dict[str, Any]:
        return {k: v for k, v in vars(estimator).items() if k.endswith("_") and not k.startswith("__")}

    before = fitted()
    try:
        yield
    except BaseException:
        for key in fitted().keys() - before.keys():
            delattr(estimator, key)
        vars(estimator).update(before)
        raise


