"""The estimators as a scikit-learn user sees them."""

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from support import FAST

from skobject2vec import Object2VecClassifier, Object2VecRegressor, from_sagemaker_hyperparameters, inference
from skobject2vec.data.batching import Batcher
from skobject2vec.datasets import make_score_pairs, make_topic_pairs
from skobject2vec.nn.invariant import ChunkedLinear


@pytest.fixture(scope="module")
def fitted_classifier(topic_data):
    X, y, _, _ = topic_data
    return Object2VecClassifier(**FAST).fit(X, y)


def test_planted_rule_classifier_generalises(topic_data):
    X, y, X_test, y_test = topic_data
    clf = Object2VecClassifier(**dict(FAST, epochs=10)).fit(X, y)
    assert clf.score(X_test, y_test) >= 0.95


def test_planted_score_regressor_generalises():
    X, y = make_score_pairs(2400, seed=1)
    reg = Object2VecRegressor(**dict(FAST, epochs=20)).fit(X[:2000], y[:2000])
    assert r2_score(y[2000:], reg.predict(X[2000:])) >= 0.9
    assert reg.score(X[2000:], y[2000:]) >= 0.9


@pytest.mark.parametrize("network", ["pooled_embedding", "hcnn", "bilstm"])
def test_each_encoder_trains(network, topic_data):
    X, y, X_test, y_test = topic_data
    clf = Object2VecClassifier(**dict(FAST, enc0_network=network, epochs=6)).fit(X, y)
    history = [h["train:cross_entropy"] for h in clf.history_]
    assert history[-1] < history[0]
    assert clf.score(X_test, y_test) > 0.9
    assert clf.net_.config["networks"] == [network, network]


@pytest.mark.parametrize("comparator", ["hadamard", "concat", "abs_diff", "hadamard, concat", "hadamard,abs_diff",
                                        ("concat", "abs_diff"), "hadamard, concat, abs_diff"])
def test_each_comparator_combination_trains(comparator, topic_data):
    X, y, X_test, y_test = topic_data
    clf = Object2VecClassifier(**dict(FAST, comparator_list=comparator)).fit(X, y)
    assert clf.score(X_test, y_test) > 0.85


def test_bad_comparator_is_named():
    with pytest.raises(ValueError, match="comparator_list.*unknown operation"):
        Object2VecClassifier(comparator_list="hadamard, dot").fit([[1, 2], [3, 4]], [0, 1])
    with pytest.raises(ValueError, match="comparator_list.*empty"):
        Object2VecClassifier(comparator_list="").fit([[1, 2], [3, 4]], [0, 1])


def test_enc1_copies_enc0_configuration_not_weights(topic_data):
    X, y, _, _ = topic_data
    net = Object2VecClassifier(**dict(FAST, enc0_network="hcnn", epochs=1), shared_encoder=False).fit(
        X[:200], y[:200]).net_
    assert net.config["networks"][0] == net.config["networks"][1] == "hcnn"
    w0 = net.encoder0.convs[0].weight
    w1 = net.encoder1.convs[0].weight
    assert w0.shape == w1.shape and not torch.equal(w0, w1)


def test_asymmetric_encoders():
    X, y = make_topic_pairs(400)
    clf = Object2VecClassifier(**dict(FAST, epochs=2, enc0_network="bilstm", enc1_network="pooled_embedding",
                                      enc1_token_embedding_dim=8)).fit(X, y)
    assert clf.net_.config["networks"] == ["bilstm", "pooled_embedding"]
    assert clf.transform([{"in1": [3, 4]}]).shape == (1, FAST["enc_dim"])


def test_enc1_settings_ignored_under_enc0_warns():
    X, y = make_topic_pairs(100)
    with pytest.warns(UserWarning, match="enc1_cnn_filter_width ignored"):
        Object2VecClassifier(**dict(FAST, epochs=1, enc1_cnn_filter_width=5)).fit(X, y)


def test_string_labels_and_classes(topic_data):
    X, y, _, _ = topic_data
    labels = np.array(["different", "same"])[y[:400]]
    clf = Object2VecClassifier(**dict(FAST, epochs=2)).fit(X[:400], labels)
    assert list(clf.classes_) == ["different", "same"]
    assert set(clf.predict(X[:50])) <= {"different", "same"}
    proba = clf.predict_proba(X[:50])
    assert proba.shape == (50, 2) and np.allclose(proba.sum(1), 1)
    np.testing.assert_allclose(np.log(proba), clf.predict_log_proba(X[:50]))


def test_num_classes_fixes_the_label_set():
    X, y = make_topic_pairs(200)
    clf = Object2VecClassifier(**dict(FAST, epochs=1), num_classes=3).fit(X, y)
    assert list(clf.classes_) == [0, 1, 2]
    assert clf.predict_proba(X[:3]).shape == (3, 3)
    with pytest.raises(ValueError, match=r"y\[0\].*num_classes=3"):
        Object2VecClassifier(num_classes=3).fit(X[:2], [5, 1])


def test_input_formats_agree(fitted_classifier):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 100, size=(20, 6))
    records = [{"in0": row[:3].tolist(), "in1": row[3:].tolist()} for row in array]
    frame = pd.DataFrame({"in0": [r["in0"] for r in records], "in1": [r["in1"] for r in records]})
    objects = np.empty(len(records), dtype=object)
    objects[:] = records
    expected = fitted_classifier.predict_proba(records)
    np.testing.assert_array_equal(fitted_classifier.predict_proba(frame), expected)
    np.testing.assert_array_equal(fitted_classifier.predict_proba(objects), expected)
    # a 2-D array has in0 in its first half of columns
    clf = Object2VecClassifier(**dict(FAST, epochs=1))
    clf.fit(array, np.arange(20) % 2)
    np.testing.assert_array_equal(clf.predict_proba(array), clf.predict_proba(
        [{"in0": row[:3].tolist(), "in1": row[3:].tolist()} for row in array]))
    assert clf.n_features_in_ == 6
    clf.fit(records, np.arange(20) % 2)
    assert not hasattr(clf, "n_features_in_")


def test_transform_pairs_and_single_sides(fitted_classifier):
    X = [{"in0": [1, 2, 3], "in1": [30, 31]}, {"in0": [50], "in1": [60, 61, 62, 63]}]
    pairs = fitted_classifier.transform(X)
    d = FAST["enc_dim"]
    assert pairs.shape == (2, 2 * d) and pairs.dtype == np.float32  # the network's dtype
    left = fitted_classifier.transform([{"in0": r["in0"]} for r in X])
    right = fitted_classifier.transform([{"in1": r["in1"]} for r in X])
    np.testing.assert_allclose(left, pairs[:, :d], rtol=1e-6)
    np.testing.assert_allclose(right, pairs[:, d:], rtol=1e-6)
    with pytest.raises(ValueError, match="record 1.*'in1'.*not both"):
        fitted_classifier.transform([{"in0": [1]}, {"in0": [2], "in1": [3]}])


def _pieces(method, X, size):
    return np.concatenate([method(X[i:i + size]) for i in range(0, len(X), size)])


@pytest.mark.parametrize("network", ["pooled_embedding", "hcnn", "bilstm"])
def test_float32_outputs_do_not_depend_on_the_batch_bit_for_bit(network):
    # float32 BLAS kernels round differently for other batch shapes (and per CPU); inference must not.
    X, y = make_topic_pairs(300)
    clf = Object2VecClassifier(**dict(FAST, enc0_network=network, epochs=1)).fit(X, y)
    rng = np.random.default_rng(1)
    batch = [{"in0": rng.integers(0, 100, rng.integers(1, 60)).tolist()} for _ in range(1000)]
    target = {"in0": [5, 17, 42]}
    alone = clf.transform([target])[0]
    batch[500] = target
    assert np.array_equal(alone, clf.transform(batch)[500])
    assert np.array_equal(clf.transform(X[:200]), _pieces(clf.transform, X[:200], 7))
    full = clf.predict_proba(X)
    for size in (1, 7, 13):
        assert np.array_equal(full[:150], _pieces(clf.predict_proba, X[:150], size)), size


@pytest.mark.parametrize("columns", [2, 4])  # single ids (pooled), tuples of fields (hcnn)
@pytest.mark.parametrize("estimator", [Object2VecRegressor, Object2VecClassifier])
def test_defaults_predict_the_same_bits_alone_in_slices_and_in_the_whole_set(estimator, columns):
    # scikit-learn's check_methods_subset_invariance at the defaults, with exact equality and more shapes
    rng = np.random.default_rng(0)
    X = rng.integers(0, 50, size=(1500, columns))
    y = X[:, 0] % 3 if estimator is Object2VecClassifier else (X[:, 0] - X[:, -1]) / 10.0
    model = estimator(random_state=0, epochs=2).fit(X, y)
    method = model.predict_proba if estimator is Object2VecClassifier else model.predict
    full = method(X)
    assert full.dtype == np.float64
    for size in (1, 3, 17, 1000):
        assert np.array_equal(full[:300] if size < 1000 else full, _pieces(method, X[:300] if size < 1000 else X,
                                                                            size)), size
    assert np.array_equal(model.transform(X), _pieces(model.transform, X, 11))


@pytest.mark.parametrize("estimator", [Object2VecClassifier, Object2VecRegressor])
def test_a_linear_mlp_predicts_what_its_layers_compute_one_by_one(estimator, monkeypatch):
    # mlp_activation="linear" (SageMaker's default): inference folds the MLP and the output layer into one
    # affine map (dropout is idle at inference); the outputs are the layers' own, and the same in any batch
    from skobject2vec.nn import model as network

    X, y = make_topic_pairs(300)
    if estimator is Object2VecRegressor:
        y = y + np.array([len(record["in0"]) for record in X]) / 10.0
    model = estimator(**dict(FAST, epochs=2, mlp_layers=2, mlp_activation="linear", dropout=0.3)).fit(X, y)
    method = model.predict_proba if estimator is Object2VecClassifier else model.predict
    folded = method(X)
    assert not list(inference.inference_net(model.net_)[0].mlp)  # no layer of the MLP runs at inference
    assert np.array_equal(folded[:100], _pieces(method, X[:100], 7))
    monkeypatch.setattr(network, "_fold_affine_layers", lambda wide: None)
    inference._INFERENCE_COPIES.clear()
    layered = method(X)  # the layers one by one (nn.invariant.ChunkedLinear)
    assert sum(isinstance(layer, ChunkedLinear) for layer in inference.inference_net(model.net_)[0].mlp) == 2
    np.testing.assert_allclose(folded, layered, rtol=1e-6, atol=1e-7)


def test_float64_predictions_are_exactly_batch_invariant():
    X, y = make_topic_pairs(300)
    clf = Object2VecClassifier(**dict(FAST, dtype="float64", epochs=1)).fit(X, y)
    together = clf.predict_proba(X[:100])
    one_by_one = np.vstack([clf.predict_proba([r]) for r in X[:100]])
    np.testing.assert_allclose(together, one_by_one, rtol=0, atol=1e-12)


def test_predict_works_in_bounded_batches(fitted_classifier, monkeypatch):
    X, _ = make_topic_pairs(250, seed=3)
    expected = fitted_classifier.predict_proba(X)
    seen = []
    original = Batcher.pair

    def spy(self, pairs, left, right=None, **kwargs):
        seen.append(len(left))
        return original(self, pairs, left, right, **kwargs)

    monkeypatch.setattr(inference, "INFERENCE_BATCH_SIZE", 64)
    monkeypatch.setattr(Batcher, "pair", spy)
    np.testing.assert_allclose(fitted_classifier.predict_proba(X), expected, rtol=1e-5, atol=1e-7)
    assert max(seen) == 64 and sum(seen) == 250


def test_same_random_state_is_bit_identical_whatever_the_global_seed(topic_data):
    X, y, X_test, _ = topic_data
    torch.manual_seed(1)
    np.random.seed(1)
    a = Object2VecClassifier(**dict(FAST, epochs=2, dropout=0.2)).fit(X[:500], y[:500]).predict_proba(X_test)
    torch.manual_seed(2)
    np.random.seed(2)
    b = Object2VecClassifier(**dict(FAST, epochs=2, dropout=0.2)).fit(X[:500], y[:500]).predict_proba(X_test)
    np.testing.assert_array_equal(a, b)
    c = Object2VecClassifier(**dict(FAST, epochs=2, dropout=0.2, random_state=1)).fit(X[:500], y[:500])
    assert not np.array_equal(a, c.predict_proba(X_test))


def test_pickle_and_joblib_round_trips_are_bit_identical(fitted_classifier, tmp_path, topic_data):
    X_test = topic_data[2]
    expected = fitted_classifier.predict_proba(X_test)
    restored = pickle.loads(pickle.dumps(fitted_classifier))
    np.testing.assert_array_equal(restored.predict_proba(X_test), expected)
    joblib.dump(fitted_classifier, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").predict_proba(X_test), expected)
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib", mmap_mode="r").predict_proba(X_test),
                                  expected)


def test_clone_is_unfitted_with_equal_params(fitted_classifier):
    copy = clone(fitted_classifier)
    assert copy.get_params() == fitted_classifier.get_params()
    assert not hasattr(copy, "net_")


@pytest.mark.slow
def test_grid_search_over_records_in_parallel(topic_data):
    X, y, _, _ = topic_data
    grid = GridSearchCV(Object2VecClassifier(**dict(FAST, epochs=5)),
                        {"enc_dim": [8, 16], "learning_rate": [0.0005, 0.02]}, cv=2, n_jobs=2)
    grid.fit(X, y)
    assert grid.best_params_["learning_rate"] == 0.02  # 5 epochs at lr 0.0005 barely move
    assert grid.best_score_ > 0.85
    assert grid.predict(X[:5]).shape == (5,)


def test_regressor_grid_search_and_pipeline():
    X, y = make_score_pairs(500)
    shift = FunctionTransformer(lambda rows: [{"in0": [t + 1 for t in r["in0"]], "in1": r["in1"]} for r in rows])
    pipe = make_pipeline(shift, Object2VecRegressor(**dict(FAST, epochs=3, enc0_network="pooled_embedding")))
    grid = GridSearchCV(pipe, {"object2vecregressor__enc_dim": [8, 16]}, cv=2)
    grid.fit(X, y)
    assert np.isfinite(grid.best_score_)
    assert grid.predict(X[:4]).shape == (4,)


def test_early_stopping_on_validation_data_keeps_the_best_epoch(topic_data):
    X, y, X_test, y_test = topic_data
    # lr so high that validation loss soon rises: training must stop and keep the best weights
    clf = Object2VecClassifier(**dict(FAST, epochs=40, learning_rate=0.05, early_stopping_patience=2))
    clf.fit(X[:600], y[:600], X_val=X_test, y_val=y_test)
    losses = [h["validation:cross_entropy"] for h in clf.history_]
    assert len(clf.history_) < 40
    best = int(np.argmin(losses))
    assert clf.history_[best]["best"]
    log_proba = clf.predict_log_proba(X_test)
    val_loss = -np.mean(log_proba[np.arange(len(y_test)), y_test])
    assert val_loss == pytest.approx(losses[best], rel=1e-5)


def test_validation_fraction_and_no_early_stopping_on_small_data_by_default(topic_data):
    X, y, _, _ = topic_data
    clf = Object2VecClassifier(**dict(FAST, epochs=3, validation_fraction="auto")).fit(X[:300], y[:300])
    assert len(clf.history_) == 3 and "validation:cross_entropy" not in clf.history_[0]
    clf = Object2VecClassifier(**dict(FAST, epochs=3, validation_fraction=0.2)).fit(X[:300], y[:300])
    assert "validation:accuracy" in clf.history_[0]


def test_regressor_history_in_user_units():
    X, y = make_score_pairs(300)
    reg = Object2VecRegressor(**dict(FAST, epochs=2)).fit(X, y * 100, X_val=X[:50], y_val=y[:50] * 100)
    mse = np.mean((reg.predict(X[:50]) - y[:50] * 100) ** 2)
    best = [h for h in reg.history_ if h["best"]][0]
    assert best["validation:mean_squared_error"] == pytest.approx(mse, rel=1e-4)


def test_unseen_ids_use_the_unknown_row(fitted_classifier):
    vocab = fitted_classifier.vocab_sizes_[0]
    out = fitted_classifier.predict_proba([{"in0": [vocab + 10, 3], "in1": [10 ** 9]}])
    same = fitted_classifier.predict_proba([{"in0": [vocab, 3], "in1": [vocab]}])
    np.testing.assert_array_equal(out, same)


def test_sample_weight_zero_removes_records(topic_data):
    X, y, X_test, y_test = topic_data
    # the labels of zero-weight records are flipped: if they counted, accuracy would collapse
    y_noisy = y.copy()
    y_noisy[1000:] = 1 - y_noisy[1000:]
    weights = np.ones(len(y))
    weights[1000:] = 0
    clf = Object2VecClassifier(**FAST).fit(X, y_noisy, sample_weight=weights)
    assert clf.score(X_test, y_test) > 0.9


def test_from_sagemaker_hyperparameters_picks_the_estimator():
    clf = from_sagemaker_hyperparameters({"enc0_max_seq_len": "10", "enc0_vocab_size": "100", "num_classes": "3",
                                          "enc_dim": "16", "tied_token_embedding_weight": "true",
                                          "_kvstore": "device"})
    assert isinstance(clf, Object2VecClassifier)
    assert clf.num_classes == 3 and clf.tied_token_embedding_weight is True and clf.enc_dim == 16
    reg = from_sagemaker_hyperparameters({"output_layer": "mean_squared_error", "enc0_layers": "auto"})
    assert isinstance(reg, Object2VecRegressor) and reg.enc0_layers == "auto"
    with pytest.raises(ValueError, match="'feature_dim'"):
        from_sagemaker_hyperparameters({"feature_dim": "3"})
    with pytest.raises(ValueError, match="'epochs'.*\\[1, 100\\]"):
        from_sagemaker_hyperparameters({"epochs": "0"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_model_unpickles_with_cpu_tensors(topic_data):  # pragma: no cover - GPU machines only
    X, y, _, _ = topic_data
    clf = Object2VecClassifier(**dict(FAST, epochs=1), device="cuda").fit(X[:200], y[:200])
    restored = pickle.loads(pickle.dumps(clf))
    assert next(restored.net_.parameters()).device.type == "cpu"

