"""The public estimators' docstrings are complete (numpydoc): every parameter and return described."""

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")

import skobject2vec  # noqa: E402

METHODS = ("fit", "partial_fit", "predict", "predict_proba", "predict_log_proba", "score", "transform",
           "encode", "similarity", "most_similar", "save", "get_feature_names_out", "get_params", "set_params")
#: Public functions and classes beyond the estimators.
FUNCTIONS = ("skobject2vec.parallel.fit_stream", "skobject2vec.inference.postprocess",
             "skobject2vec.callbacks.EarlyStopping", "skobject2vec.callbacks.LRScheduler",
             "skobject2vec.callbacks.Checkpoint", "skobject2vec.datasets.make_topic_pairs",
             "skobject2vec.datasets.make_score_pairs")
#: missing or undescribed parameters and returns
CHECKED = {"PR01", "PR02", "PR07", "RT01", "RT03"}


def _public_names():
    for cls in ("Object2VecClassifier", "Object2VecRegressor"):
        yield f"skobject2vec.{cls}"
        for method in METHODS:
            if hasattr(getattr(skobject2vec, cls), method):
                yield f"skobject2vec.{cls}.{method}"
    yield from FUNCTIONS


@pytest.mark.parametrize("name", list(_public_names()))
def test_numpydoc_parameters_and_returns(name):
    errors = [(code, message) for code, message in numpydoc_validate.validate(name)["errors"] if code in CHECKED]
    assert not errors, errors
