"""Issue 14: set_output, feature names, encode/similarity/most_similar, warm_start, partial_fit, history views."""

import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from support import FAST

from skobject2vec import Object2VecClassifier, Object2VecRegressor, load, most_similar, similarity
from skobject2vec.callbacks import Callback
from skobject2vec.datasets import make_score_pairs, make_topic_pairs


@pytest.fixture(scope="module")
def data():
    return make_topic_pairs(300, seed=3)


@pytest.fixture(scope="module")
def clf(data):
    X, y = data
    return Object2VecClassifier(**dict(FAST, epochs=3)).fit(X, y)


# ---------------------------------------------------------------- feature names, set_output
def test_feature_names_pairs_and_sides(clf, data):
    X, _ = data
    d = FAST["enc_dim"]
    names = clf.get_feature_names_out()
    assert names.dtype == object and len(names) == 2 * d
    assert names[0] == "enc0_0" and names[d - 1] == f"enc0_{d - 1}" and names[d] == "enc1_0"
    assert len(names) == clf.transform(X[:3]).shape[1]


def test_feature_names_check_input_features():
    X = np.arange(40).reshape(10, 4) % 7
    est = Object2VecClassifier(**dict(FAST, epochs=1)).fit(X, np.arange(10) % 2)
    assert len(est.get_feature_names_out([f"x{i}" for i in range(4)])) == 2 * FAST["enc_dim"]
    with pytest.raises(ValueError, match="input_features should have length"):
        est.get_feature_names_out(["a", "b"])


def test_set_output_pandas(clf, data):
    X, _ = data
    est = sklearn.base.clone(clf).set_output(transform="pandas")
    est.fit(*data)
    out = est.transform(X[:5])
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(est.get_feature_names_out())
    np.testing.assert_array_equal(out.to_numpy(), est.set_output(transform="default").transform(X[:5]))
    est.set_output(transform="pandas")
    left = est.transform([{"in0": r["in0"]} for r in X[:5]])
    right = est.transform([{"in1": r["in1"]} for r in X[:5]])
    assert list(left.columns) == [f"enc0_{i}" for i in range(FAST["enc_dim"])]
    assert list(right.columns) == [f"enc1_{i}" for i in range(FAST["enc_dim"])]
    # a DataFrame input keeps its index
    frame = pd.DataFrame(X[:4], index=[10, 11, 12, 13])
    assert list(est.transform(frame).index) == [10, 11, 12, 13]
    assert isinstance(est.fit_transform(*data), pd.DataFrame)


def test_global_set_config_pandas(clf, data):
    X, _ = data
    with sklearn.config_context(transform_output="pandas"):
        out = clf.transform(X[:3])
        assert isinstance(out, pd.DataFrame) and out.shape == (3, 2 * FAST["enc_dim"])
    assert isinstance(clf.transform(X[:3]), np.ndarray)


def test_transform_dtype_follows_model(data):
    X, y = data
    est = Object2VecClassifier(**dict(FAST, epochs=1, dtype="float64")).fit(X[:50], y[:50])
    assert est.transform(X[:2]).dtype == np.float64
    assert Object2VecClassifier(**dict(FAST, epochs=1)).fit(X[:50], y[:50]).transform(X[:2]).dtype == np.float32


# ---------------------------------------------------------------- encode / similarity / most_similar
def test_encode_agrees_with_transform(clf, data):
    X, _ = data
    d = FAST["enc_dim"]
    pairs = clf.transform(X[:20])
    left = clf.encode([r["in0"] for r in X[:20]], side="in0", batch_size=3)
    right = clf.encode([{"in1": r["in1"]} for r in X[:20]])
    np.testing.assert_allclose(left, pairs[:, :d], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(right, pairs[:, d:], rtol=1e-5, atol=1e-6)
    mixed = clf.encode([{"in0": X[0]["in0"]}, {"in1": X[1]["in1"]}])
    np.testing.assert_allclose(mixed, [pairs[0, :d], pairs[1, d:]], rtol=1e-5, atol=1e-6)
    # pair records with an explicit side
    np.testing.assert_allclose(clf.encode(X[:20], side="in1"), right, rtol=1e-6)
    t = clf.encode(X[:4], side="in0", convert_to="torch", normalize_embeddings=True, show_progress_bar=False)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.norm(dim=1).numpy(), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="one side per record"):
        clf.encode(X[:2])
    with pytest.raises(ValueError, match="convert_to"):
        clf.encode(X[:2], side="in0", convert_to="list")


def test_similarity_cosine_and_dot(clf, data):
    X, _ = data
    a = clf.encode(X[:5], side="in0")
    b = clf.encode(X[:7], side="in1")
    dot = clf.similarity(a, b, metric="dot")
    np.testing.assert_allclose(dot, a @ b.T, rtol=1e-5)
    cos = similarity(a, b)
    expected = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    np.testing.assert_allclose(cos, expected, rtol=1e-5, atol=1e-6)
    assert isinstance(similarity(torch.from_numpy(a), torch.from_numpy(b)), torch.Tensor)
    with pytest.raises(ValueError, match="metric"):
        similarity(a, b, metric="l2")


def test_most_similar_exact_recall_in_chunks():
    rng = np.random.default_rng(0)
    corpus = rng.normal(size=(1000, 16)).astype(np.float32)
    query = corpus[:50] + rng.normal(0, 0.01, size=(50, 16)).astype(np.float32)
    for metric in ("cosine", "dot"):
        scores, index = most_similar(query, corpus, k=5, metric=metric, chunk_size=97)
        assert index.shape == scores.shape == (50, 5)
        full = similarity(query, corpus, metric=metric)
        exact = np.argsort(-full, axis=1)[:, :5]
        recall = np.mean([len(set(i) & set(e)) / 5 for i, e in zip(index, exact)])
        assert recall == 1.0
        np.testing.assert_allclose(scores, np.take_along_axis(full, index, 1), rtol=1e-5)
        assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first
    # recall@1 of the near-copy
    assert (most_similar(query, corpus, k=1, chunk_size=64)[1][:, 0] == np.arange(50)).all()
    assert most_similar(query[:2], corpus[:3], k=10)[1].shape == (2, 3)  # k clipped


def test_most_similar_on_records_retrieves_same_topic(clf, data):
    X, _ = data
    docs = [{"in1": r["in1"]} for r in X[:100]]
    scores, index = clf.most_similar([{"in0": X[0]["in0"]}], docs, k=3)
    corpus = clf.encode(docs)
    q = clf.encode([{"in0": X[0]["in0"]}])
    np.testing.assert_array_equal(index, most_similar(q, corpus, k=3)[1])


# ---------------------------------------------------------------- warm_start / partial_fit / history views
def _first_param(est):
    return next(est.net_.parameters()).detach().clone()


def test_warm_start_continues_from_previous_weights(data):
    X, y = data
    est = Object2VecClassifier(**dict(FAST, epochs=2, warm_start=True, learning_rate=0.003)).fit(X, y)
    net, before, losses = est.net_, _first_param(est), list(est.loss_curve_)
    est.fit(X, y)
    assert est.net_ is net  # not rebuilt
    assert est.n_iter_ == 4 and [r["epoch"] for r in est.history_] == [1, 2, 3, 4]
    assert est.loss_curve_[:2] == losses
    assert est.loss_curve_[2] < losses[0]  # starts where the first fit stopped
    assert est.loss_curve_[3] < losses[1]
    assert not torch.equal(_first_param(est), before)
    cold = Object2VecClassifier(**dict(FAST, epochs=2, learning_rate=0.003)).fit(X, y)
    cold_net = cold.net_
    cold.fit(X, y)
    assert cold.net_ is not cold_net and cold.n_iter_ == 2  # warm_start=False rebuilds
    # a different architecture is rebuilt even with warm_start
    est.set_params(mlp_dim=8).fit(X, y)
    assert est.net_ is not net and est.n_iter_ == 2


def test_partial_fit_one_epoch_from_current_weights(data, tmp_path):
    X, y = data
    seen = []

    class ParamsProbe(Callback):  # what get_params() says while partial_fit runs
        def on_train_begin(self, loop):
            seen.append(est.get_params()["epochs"])

    est = Object2VecClassifier(**dict(FAST, learning_rate=0.003), callbacks=[ParamsProbe()])
    est.partial_fit(X, y, classes=[0, 1])
    assert est.n_iter_ == 1 and est.epochs == FAST["epochs"] and seen == [FAST["epochs"]]  # never mutated
    est.set_params(callbacks=None)
    first = est.loss_curve_[0]
    for _ in range(3):
        est.partial_fit(X, y)
    assert est.n_iter_ == 4 and est.best_epoch_ == 4
    assert est.loss_curve_[-1] < first
    # SageMaker's incremental training: continue a saved artifact
    est.save(tmp_path / "model")
    loaded = load(tmp_path / "model")
    loaded.partial_fit(X, y)
    assert loaded.n_iter_ == 5 and loaded.loss_curve_[-1] < first
    with pytest.raises(ValueError, match="differ from the fitted classes"):
        est.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="first partial_fit call must see every class"):
        Object2VecClassifier(**FAST).partial_fit(X[:5], [0] * 5, classes=[0, 1])


def test_partial_fit_regressor_keeps_target_scaling():
    X, y = make_score_pairs(200)
    est = Object2VecRegressor(**dict(FAST, epochs=1)).fit(X, y)
    mean, scale = est.y_mean_, est.y_scale_
    est.partial_fit(X[:50], y[:50] + 100.0)
    assert (est.y_mean_, est.y_scale_) == (mean, scale) and est.n_iter_ == 2


def test_history_views(data):
    X, y = data
    est = Object2VecClassifier(**dict(FAST, epochs=4)).fit(X[:200], y[:200], X_val=X[200:], y_val=y[200:])
    assert est.n_iter_ == len(est.history_) == 4
    assert est.loss_curve_ == [r["train:cross_entropy"] for r in est.history_]
    assert est.validation_scores_ == [r["validation:accuracy"] for r in est.history_]
    best = min(est.history_, key=lambda r: r["validation:cross_entropy"])["epoch"]
    assert est.best_epoch_ == best
    assert "n_iter_" not in vars(est)  # derived from history_, not stored twice
    no_val = Object2VecClassifier(**dict(FAST, epochs=2)).fit(X[:50], y[:50])
    assert no_val.validation_scores_ is None and no_val.best_epoch_ == 2
    with pytest.raises(AttributeError):
        Object2VecClassifier().n_iter_
