"""shared_encoder: enc1 is enc0 (one module, one table) wherever a model goes, and its "auto" rule."""

import pickle

import numpy as np
import pytest
from support import FAST

from skobject2vec import Object2VecClassifier, Object2VecRegressor, from_sagemaker_hyperparameters, load
from skobject2vec.data.jsonlines import write_records
from skobject2vec.datasets import make_topic_pairs


@pytest.fixture(scope="module")
def pairs():
    return make_topic_pairs(600, seed=3)


def _single_sides(X):
    return [{"in0": r["in0"]} for r in X], [{"in1": r["in0"]} for r in X]


def _assert_shared(net):
    assert net.encoder1 is None and net.encoder(0) is net.encoder(1)
    assert net.token_table(0) is net.token_table(1)
    names = [name for name, _ in net.named_parameters()]
    assert not any(name.startswith(("encoder1.", "token_embedding1.")) for name in names)


@pytest.mark.parametrize("network", ["pooled_embedding", "hcnn", "bilstm"])
def test_shared_encoder_is_one_module_giving_one_embedding(network, pairs):
    X, y = pairs
    clf = Object2VecClassifier(**dict(FAST, enc0_network=network, epochs=2), shared_encoder=True).fit(X, y)
    _assert_shared(clf.net_)
    as_in0, as_in1 = _single_sides(X[:50])
    np.testing.assert_array_equal(clf.transform(as_in0), clf.transform(as_in1))
    unshared = Object2VecClassifier(**dict(FAST, enc0_network=network, epochs=2), shared_encoder=False).fit(X, y)
    assert sum(p.numel() for p in clf.net_.parameters()) < sum(p.numel() for p in unshared.net_.parameters())
    assert not np.array_equal(unshared.transform(as_in0), unshared.transform(as_in1))


def test_shared_encoder_round_trips(pairs, tmp_path):
    X, y = pairs
    clf = Object2VecClassifier(**FAST, shared_encoder=True).fit(X, y)
    expected = clf.predict_proba(X[:40])
    restored = load(clf.save(tmp_path / "model"))
    _assert_shared(restored.net_)
    np.testing.assert_allclose(restored.predict_proba(X[:40]), expected, rtol=1e-6)
    unpickled = pickle.loads(pickle.dumps(clf))
    _assert_shared(unpickled.net_)
    np.testing.assert_array_equal(unpickled.predict_proba(X[:40]), expected)


def test_shared_encoder_onnx_parts_identical(pairs, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from skobject2vec.io.onnx import onnx_inputs, to_onnx

    X, y = pairs
    clf = Object2VecClassifier(**dict(FAST, epochs=2), shared_encoder=True).fit(X, y)
    as_in0, as_in1 = _single_sides(X[:20])
    outputs = []
    for part, records in (("enc0", as_in0), ("enc1", as_in1)):
        session = ort.InferenceSession(str(to_onnx(clf, tmp_path / f"{part}.onnx", part=part)),
                                       providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, onnx_inputs(records, part))[0])
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_allclose(outputs[0], clf.transform(as_in0), rtol=1e-5, atol=2e-6)


def test_shared_encoder_streamed_fit(pairs, tmp_path):
    X, y = pairs
    path = tmp_path / "train.jsonl"
    write_records(X, path, labels=y.tolist())
    clf = Object2VecClassifier(**dict(FAST, epochs=2)).fit(str(path))  # "auto": both sides are sequences
    _assert_shared(clf.net_)


def test_auto_rule_shares_sequences_not_ids(pairs):
    X, y = pairs
    assert Object2VecClassifier(**dict(FAST, epochs=1)).fit(X, y).net_.shared
    ids = np.random.default_rng(0).integers(0, 30, (300, 2))  # one id per side: user-item style
    scores = ids[:, 0] % 3 + ids[:, 1] % 2 + 0.0
    reg = Object2VecRegressor(**dict(FAST, epochs=1)).fit(ids, scores)
    assert not reg.net_.shared and reg.net_.token_table(0) is not reg.net_.token_table(1)
    # enc1 configured on its own, or one side a single id (in0 = [head, relation], in1 = [tail]): not shared.
    other = Object2VecClassifier(**dict(FAST, epochs=1), enc1_network="hcnn").fit(X, y)
    assert not other.net_.shared
    links = [{"in0": [h, 40 + r], "in1": [t]} for h, r, t in np.random.default_rng(1).integers(0, 20, (200, 3))]
    assert not Object2VecClassifier(**dict(FAST, epochs=1)).fit(links, [0, 1] * 100).net_.shared


def test_shared_encoder_errors_and_sagemaker_keeps_unshared(pairs):
    X, y = pairs
    with pytest.raises(ValueError, match="shared_encoder=True makes enc1 the very encoder of enc0.*enc1_network"):
        Object2VecClassifier(**FAST, shared_encoder=True, enc1_network="bilstm").fit(X, y)
    est = from_sagemaker_hyperparameters({"enc_dim": "16", "epochs": "1", "enc0_network": "pooled_embedding"})
    assert est.shared_encoder is False and est.validation_fraction is None and est.embedding_l2 == 0.0
    assert est.mlp_activation == "linear" and est.learning_rate == 0.0004 and est.mini_batch_size == 32
    assert not est.fit(X[:100], y[:100]).net_.shared
