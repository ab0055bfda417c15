"""The public estimators' docstrings are complete (numpydoc): every parameter and return described."""

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")

import skobject2vec  # noqa: E402

METHODS = ("fit", "partial_fit", "predict", "predict_proba", "predict_log_proba", "score", "transform",
           "encode", "similarity", "most_similar", "save", "get_feature_names_out")
#: missing or undescribed parameters and returns
CHECKED = {"PR01", "PR02", "PR07", "RT01", "RT03"}


def _public_names():
    for cls in ("Object2VecClassifier", "Object2VecRegressor"):
        yield f"skobject2vec.{cls}"
        for method in METHODS:
            if hasattr(getattr(skobject2vec, cls), method):
                yield f"skobject2vec.{cls}.{method}"


@pytest.mark.parametrize("name", list(_public_names()))
def test_numpydoc_parameters_and_returns(name):
    errors = [(code, message) for code, message in numpydoc_validate.validate(name)["errors"] if code in CHECKED]
    assert not errors, errors
