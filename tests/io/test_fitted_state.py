"""Every public fitted attribute survives save/load and pickling, whichever path fitted the model."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from support import FAST

import skobject2vec
from skobject2vec import Object2VecClassifier, Object2VecRegressor
from skobject2vec.datasets import make_topic_pairs
from skobject2vec.fitted import FitResult


def _public_fitted(estimator) -> dict:
    return {k: v for k, v in vars(estimator).items() if k.endswith("_") and not k.startswith("_")
            and k != "artifact_extras_"}


def _same(a, b) -> bool:
    if isinstance(a, torch.nn.Module):
        sa, sb = a.state_dict(), b.state_dict()
        return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)
    if isinstance(a, np.ndarray):
        return a.dtype == np.asarray(b).dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def _array_pairs(n, seed):
    records, y = make_topic_pairs(n, seed=seed, min_len=4, max_len=5)  # 4 tokens a side: an (n, 8) array
    return np.array([r["in0"] + r["in1"] for r in records]), y


def _fits(tmp_path):
    X, y = _array_pairs(300, 0)
    params = dict(FAST, epochs=2)
    stream = tmp_path / "train.jsonl"
    stream.write_text("".join(json.dumps({"in0": a.tolist(), "in1": b.tolist(), "label": int(t)}) + "\n"
                              for a, b, t in zip(X[:, :4], X[:, 4:], y)))
    frame = pd.DataFrame(X, columns=[f"{side}_{k}" for side in ("query", "doc") for k in range(4)])
    partial = Object2VecClassifier(**params).partial_fit(X, y, classes=[0, 1])
    rng = np.random.default_rng(0)
    ids = np.column_stack([rng.integers(0, 40, 1200), rng.integers(40, 90, 1200)])  # one id a side: recipes compared
    return {
        "regressor, single ids": Object2VecRegressor(epochs=2, random_state=0).fit(ids, rng.normal(size=1200)),
        "classifier, array": Object2VecClassifier(**params).fit(X, np.where(y == 1, "same", "other")),
        "regressor, array": Object2VecRegressor(**params).fit(X, y * 2.5 + 1),
        "classifier, DataFrame": Object2VecClassifier(**params).fit(frame, y),
        "classifier, streamed": Object2VecClassifier(**params).fit(str(stream)),
        "classifier, partial_fit x2": partial.partial_fit(X, y),
    }


def test_every_fitted_attribute_survives_save_load_and_pickle(tmp_path):
    for path, estimator in _fits(tmp_path).items():
        before = _public_fitted(estimator)
        assert {"net_", "history_", "n_epochs_", "vocab_sizes_", "max_seq_lens_"} <= before.keys(), path
        if "streamed" in path:
            assert before["n_records_"] == 300 and "n_features_in_" not in before
        if "single ids" in path:
            assert set(before["auto_recipe_"]["validation_loss"]) == {"adagrad", "adam"}
        if "DataFrame" in path:
            assert list(before["feature_names_in_"])[:2] == ["query_0", "query_1"]
        folder = tmp_path / path.replace(", ", "-").replace(" ", "")
        estimator.save(folder)
        for how, copy in (("load", skobject2vec.load(folder)), ("pickle", pickle.loads(pickle.dumps(estimator)))):
            after = _public_fitted(copy)
            assert after.keys() == before.keys(), (path, how, after.keys() ^ before.keys())
            for key, value in before.items():
                assert _same(value, after[key]), (path, how, key)


def test_fit_result_round_trips_through_its_config():
    X, y = _array_pairs(200, 1)
    estimator = Object2VecClassifier(**dict(FAST, epochs=1)).fit(X, np.array(["b", "a"])[y])
    result = FitResult.of(estimator)
    config = json.loads(json.dumps(result.to_config()))  # plain JSON
    again = FitResult.from_config(result.net, config)
    assert again.to_config() == result.to_config()
    assert again.targets.classes.dtype == estimator.classes_.dtype


def test_an_unreadable_fitted_field_is_refused_naming_it(tmp_path):
    X, y = _array_pairs(200, 1)
    Object2VecRegressor(**dict(FAST, epochs=1)).fit(X, y.astype(float)).save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["fitted"]["n_records"] = -3
    from skobject2vec.io.artifact import _config_digest
    config["config_sha256"] = _config_digest(config)
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="fitted.n_records"):
        skobject2vec.load(tmp_path / "m")
