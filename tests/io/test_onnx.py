"""ONNX export: parity with the torch model on onnxruntime, dynamic batch and sequence sizes."""

import numpy as np
import pytest
from support import FAST

from skobject2vec.datasets import make_score_pairs, make_topic_pairs

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from skobject2vec import Object2VecClassifier, Object2VecRegressor  # noqa: E402
from skobject2vec.io.onnx import onnx_inputs, to_onnx  # noqa: E402

pytestmark = pytest.mark.slow  # subprocesses, servers or many fits: `make test-fast` skips it

# Small, quick fits: parity does not need a good model, only a trained one.
SMALL = {k: v for k, v in dict(FAST, epochs=2).items() if k != "enc0_network"}


def _session(estimator, tmp_path, part):
    path = to_onnx(estimator, tmp_path / f"{part}.onnx", part=part)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _batches():
    """Query sets of different batch sizes and sequence lengths, with an unseen id
    (>= vocab size) and a record longer than max_seq_len."""
    X, _ = make_topic_pairs(40, seed=7, max_len=12)
    tricky = {"in0": [1, 5000, 3, 4, 5, 6, 7, 8, 9, 10, 11], "in1": [7000]}
    return [X[:1], [tricky] + X[:6], X[6:40]]


@pytest.fixture(scope="module")
def train_data():
    return make_topic_pairs(300, seed=0)


@pytest.mark.parametrize("network", ["pooled_embedding", "hcnn", "bilstm"])
def test_pair_model_and_encoder_parity(network, train_data, tmp_path):
    X, y = train_data
    # enc1 gets a different network so both encoder exports are exercised across the cases.
    enc1 = {"pooled_embedding": "hcnn", "hcnn": "bilstm", "bilstm": "pooled_embedding"}[network]
    clf = Object2VecClassifier(**SMALL, enc0_network=network, enc0_layers=2 if network == "bilstm" else "auto",
                               enc1_network=enc1, enc1_token_embedding_dim=8, enc0_max_seq_len=6).fit(X, y)
    model = _session(clf, tmp_path, "model")
    encoders = {part: _session(clf, tmp_path, part) for part in ("enc0", "enc1")}
    assert [i.name for i in model.get_inputs()] == ["in0_ids", "in0_lengths", "in1_ids", "in1_lengths"]
    assert [o.name for o in model.get_outputs()] == ["probabilities"]
    for batch in _batches():
        proba = model.run(None, onnx_inputs(batch))[0]
        assert proba.shape == (len(batch), 2)
        np.testing.assert_allclose(proba, clf.predict_proba(batch), atol=2e-6)
        for part, session in encoders.items():
            side = f"in{part[-1]}"
            single = [{side: record[side]} for record in batch]
            embeddings = session.run(None, onnx_inputs(single, part))[0]
            np.testing.assert_allclose(embeddings, clf.transform(single), rtol=1e-5, atol=2e-6)


def test_regressor_outputs_unstandardised_score(tmp_path):
    X, y = make_score_pairs(300, seed=0)
    reg = Object2VecRegressor(**SMALL, enc0_network="hcnn").fit(X, y)
    session = _session(reg, tmp_path, "model")
    assert [o.name for o in session.get_outputs()] == ["score"]
    X_test, _ = make_score_pairs(25, seed=1)
    score = session.run(None, onnx_inputs(X_test))[0]
    assert score.shape == (25,)
    np.testing.assert_allclose(score, reg.predict(X_test), rtol=1e-5, atol=1e-5)
    assert abs(score.mean() - y.mean()) < 3 * y.std()  # in the target's units, not standardised


def test_padding_values_do_not_matter(train_data, tmp_path):
    X, y = train_data
    clf = Object2VecClassifier(**SMALL, enc0_network="bilstm").fit(X, y)
    session = _session(clf, tmp_path, "enc0")
    feeds = onnx_inputs([{"in0": r["in0"]} for r in X[:10]], "enc0")
    wider = np.full((10, feeds["in0_ids"].shape[1] + 5), -1, dtype=np.int64)  # extra, odd padding
    for row, length in enumerate(feeds["in0_lengths"]):
        wider[row, :length] = feeds["in0_ids"][row, :length]
    a = session.run(None, feeds)[0]
    b = session.run(None, {"in0_ids": wider, "in0_lengths": feeds["in0_lengths"]})[0]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_bad_part_and_unfitted(tmp_path):
    with pytest.raises(ValueError, match="part='decoder'"):
        to_onnx(Object2VecClassifier(), tmp_path / "x.onnx", part="decoder")
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        to_onnx(Object2VecClassifier(), tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="needs 'in1'"):
        onnx_inputs([{"in0": [1]}], "enc1")


def test_missing_onnx_extra_says_what_to_install(monkeypatch, tmp_path):
    import importlib.util

    X, y = make_topic_pairs(60, seed=1)
    clf = Object2VecClassifier(**dict(SMALL, epochs=1)).fit(X, y)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match=r'missing onnxscript\): pip install "skobject2vec\[onnx\]"'):
        to_onnx(clf, tmp_path / "m.onnx")
