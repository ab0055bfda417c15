"""The estimators' input checks: scikit-learn's conventions (``validate_data``, ``n_features_in_``,
sample weights, targets) over the record parsers of :mod:`skobject2vec.data.records`.

Three input shapes are accepted (see :func:`check_pairs`):

* a 2-D numeric array ``(n, d)``: columns ``[:d // 2]`` are in0, the rest in1;
* SageMaker records: a list, tuple or 1-D object array of mappings with
  ``"in0"``/``"in1"`` lists of token ids (ragged lengths);
* a pandas DataFrame with ``in0``/``in1`` columns holding lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from sklearn.utils.validation import _check_sample_weight, validate_data

from .data.batching import PairData, Ragged
from .data.records import (
    MAX_TARGET,
    array_to_pairs,
    check_token_array,
    looks_like_records,
    records_to_pairs,
    short_repr,
)

if TYPE_CHECKING:
    import numpy.typing as npt



def check_regression_targets(y: npt.ArrayLike, what: str) -> None:
    """Refuse targets whose standardisation would overflow, naming the first such record."""
    y = np.asarray(y)
    if y.dtype.kind not in "iuf" or not y.size:
        return
    bad = ~(np.abs(y.astype(np.float64, copy=False)) <= MAX_TARGET)
    if bad.any():
        index = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"{what}: y[{index}] = {short_repr(y.ravel()[index].item())}: regression targets must be "
                         f"finite with magnitude at most {MAX_TARGET:g} (scale them down).")


def check_pairs(estimator: Any, X: Any, *, reset: bool, y: Any = "no_validation", single_side_ok: bool = False,
                y_numeric: bool = False) -> tuple[PairData | np.ndarray, Any]:
    """Validate ``X`` (and ``y`` when given) for ``estimator``.

    ``y="no_validation"`` skips y; ``y=None`` (a fit without y) raises scikit-learn's
    "requires y to be passed" error. Returns ``(pairs, y)``. The array path goes through scikit-learn's
    ``validate_data`` so that ``n_features_in_`` and the standard messages hold;
    the token checks come after, in the order scikit-learn's checks expect.
    """
    name = type(estimator).__name__
    if looks_like_records(X):
        if reset:
            for attr in ("n_features_in_", "feature_names_in_"):
                if hasattr(estimator, attr):
                    delattr(estimator, attr)
        if not (isinstance(y, str) and y == "no_validation"):
            y = validate_data(estimator, X="no_validation", y=y, y_numeric=y_numeric)
            y = np.asarray(y)
            if y.ndim == 2 and y.shape[1] == 1:
                y = y.ravel()
            if len(y) != len(X):
                raise ValueError(f"X has {len(X)} records but y has {len(y)} values; they must match.")
            if y_numeric:
                check_regression_targets(y, name)
        return records_to_pairs(X, what=name, single_side_ok=single_side_ok), y
    kwargs = dict(dtype="numeric", ensure_all_finite=True, accept_sparse=False, reset=reset)
    if reset:
        kwargs["ensure_min_features"] = 2
    if not (isinstance(y, str) and y == "no_validation"):
        X, y = validate_data(estimator, X, y, y_numeric=y_numeric, **kwargs)
        if y_numeric:
            check_regression_targets(y, name)
    else:
        X = validate_data(estimator, X, **kwargs)
    return X, y


def relative_weights(weight: np.ndarray) -> np.ndarray:
    """Sample weights divided by their largest: every loss is a weighted mean, so only their ratios count,
    and weights as large as 1e308 would overflow the float32 sums of a batch into a NaN model."""
    top = float(weight.max()) if weight.size else 0.0
    return weight / top if top > 0 else weight


def check_sample_weight(sample_weight: Any, n: int) -> np.ndarray:
    """scikit-learn's checks of ``sample_weight`` for ``n`` records (None: all 1), as float64."""
    return cast(np.ndarray, _check_sample_weight(sample_weight, np.empty((n, 0)), dtype=np.float64,
                                                 ensure_non_negative=True))


def finish_pairs(data: PairData | np.ndarray, what: str) -> PairData:
    """Checked records as they are, or a checked integer array's token checks and its split into two sides
    (after the target checks: the order scikit-learn's checks expect)."""
    if isinstance(data, PairData):
        return data
    return array_to_pairs(check_token_array(data, what))


@dataclass(frozen=True)
class FitData:
    """The checked input of an in-memory fit: the records (an integer array not yet split, see
    :func:`finish_pairs`), the targets as given and the relative sample weights."""

    data: PairData | np.ndarray
    y: np.ndarray
    weight: np.ndarray


def check_fit_data(estimator: Any, X: Any, y: Any, sample_weight: Any, *, reset: bool) -> FitData:
    """Validate a fit's ``X``, ``y`` and ``sample_weight`` (``reset``: a new fit, not ``partial_fit``)."""
    data, y = check_pairs(estimator, X, reset=reset, y=y, y_numeric=estimator._task == "regression")
    return FitData(data, y, relative_weights(check_sample_weight(sample_weight, len(y))))


def check_vocab(ragged: Ragged, vocab_size: int, field: str, what: str) -> None:
    """At fit time, ids must be ``< vocab_size`` (SageMaker fails the job otherwise)."""
    bad = np.flatnonzero(ragged.values >= vocab_size)
    if bad.size:
        record = int(np.searchsorted(ragged.offsets, bad[0], side="right") - 1)
        raise ValueError(
            f"{what}: record {record}, field {field!r}: token id {int(ragged.values[bad[0]])} is not less "
            f"than vocab_size={vocab_size} (enc{field[-1]}_vocab_size)."
        )
