"""SageMaker training features: negative sampling, tied and pretrained token tables,
row_sparse updates, length bucketing and SageMaker's all-strings hyperparameters."""

import copy
import gzip
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss
from support import FAST

import skobject2vec
from skobject2vec import Object2VecClassifier, Object2VecRegressor, from_sagemaker_hyperparameters, training
from skobject2vec._fit import epoch_data_factory
from skobject2vec.data.batching import Batcher, PairData, Ragged, batch_indices
from skobject2vec.datasets import make_score_pairs, make_topic_pairs
from skobject2vec.nn.model import Object2VecNet
from skobject2vec.text.pretrained import load_pretrained_table, read_pretrained_vectors

POOLED = dict(FAST, enc0_network="pooled_embedding")


# ------------------------------------------------------------ negative sampling
def _topic_side(rng, topics, tokens_per_topic=25):
    return [(t * tokens_per_topic + rng.integers(0, tokens_per_topic, rng.integers(2, 8))).tolist() for t in topics]


def all_positive_pairs(n, seed=0, n_topics=6):
    """Only positives: both sides drawn from one topic (SageMaker's document-embedding setup)."""
    rng = np.random.default_rng(seed)
    topics = rng.integers(0, n_topics, n)
    return [{"in0": a, "in1": b} for a, b in zip(_topic_side(rng, topics), _topic_side(rng, topics))]


def test_set_with_explicit_negatives(n_positives, seed=1, n_topics=6, per_positive=5):
    """Like the notebook's test file: each positive plus 5 negatives from other topics (baseline 1/6)."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for a in rng.integers(0, n_topics, n_positives):
        others = (a + rng.integers(1, n_topics, per_positive)) % n_topics
        for b in [a, *others]:
            X.append({"in0": _topic_side(rng, [a])[0], "in1": _topic_side(rng, [b])[0]})
            y.append(int(a == b))
    return X, np.array(y)


test_set_with_explicit_negatives.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def positives_only():
    X = all_positive_pairs(600)
    X_test, y_test = test_set_with_explicit_negatives(100)
    return X, np.ones(len(X), dtype=int), X_test, y_test


def test_negative_sampling_learns_from_positives_only(positives_only):
    X, y, X_test, y_test = positives_only
    baseline = np.mean(y_test == 1)  # the accuracy of predicting "positive" everywhere (1/6 by design)
    clf = Object2VecClassifier(**dict(POOLED, epochs=6), negative_sampling_rate=3, num_classes=2).fit(X, y)
    assert clf.classes_.tolist() == [0, 1]
    assert clf.score(X_test, y_test) > baseline + 0.6
    # the notebook's integer labels without num_classes: 0 is added as the negative class
    assert Object2VecClassifier(**dict(POOLED, epochs=1), negative_sampling_rate=1).fit(X, y).classes_.tolist() \
        == [0, 1]


def test_without_negative_sampling_positives_only_does_not_learn(positives_only):
    X, y, X_test, y_test = positives_only
    with pytest.raises(ValueError, match="only one class.*negative_sampling_rate > 0"):
        Object2VecClassifier(**POOLED, num_classes=2).fit(X, y)
    # A handful of negatives lets it train, but it just predicts "positive": the baseline.
    X_few = X + [{"in0": X[i]["in0"], "in1": X[i + 1]["in1"]} for i in range(6)]
    y_few = np.r_[y, np.zeros(6, dtype=int)]
    clf = Object2VecClassifier(**dict(POOLED, epochs=6)).fit(X_few, y_few)
    assert clf.score(X_test, y_test) < 0.3


def test_fresh_negatives_each_epoch_from_random_state():
    X, y = make_topic_pairs(200, seed=3)
    # the function every fit path draws its epochs from (in memory, streamed chunks, partial_fit)
    epoch_data = epoch_data_factory(np.arange(len(y)), y, np.ones(len(y)), 2, negative_index=0)
    rng = np.random.default_rng(0)
    first, second = epoch_data(1, rng), epoch_data(2, rng)
    positives = np.flatnonzero(y == 1)
    n_base = len(y)
    for data in (first, second):
        left, right, target = data.left[n_base:], data.right[n_base:], data.target[n_base:]
        assert len(left) == 2 * len(positives)  # k negatives per positive
        assert np.array_equal(np.sort(left), np.repeat(positives, 2))  # each keeps a positive's in0
        assert (right != left).all()  # with another record's in1
        assert (target == 0).all()
        assert np.array_equal(data.left[:n_base], np.arange(n_base))  # the real records stay
    assert not np.array_equal(first.right, second.right)  # fresh every epoch
    again = epoch_data(1, np.random.default_rng(0))
    assert np.array_equal(again.right, first.right)  # drawn from the rng only
    # the whole fit is deterministic under random_state and depends on it
    params = dict(POOLED, epochs=2, negative_sampling_rate=2)
    p1 = Object2VecClassifier(**dict(params, random_state=1)).fit(X, y).predict_proba(X[:50])
    p2 = Object2VecClassifier(**dict(params, random_state=1)).fit(X, y).predict_proba(X[:50])
    p3 = Object2VecClassifier(**dict(params, random_state=2)).fit(X, y).predict_proba(X[:50])
    assert np.array_equal(p1, p2) and not np.allclose(p1, p3)


def test_validation_is_not_augmented():
    X, y = make_topic_pairs(300, seed=4)
    clf = Object2VecClassifier(**dict(POOLED, epochs=3, validation_fraction=None), negative_sampling_rate=3).fit(
        X[:200], y[:200], X_val=X[200:], y_val=y[200:])
    # the validation metrics are those of exactly X_val (no sampled negatives added), at the kept epoch
    best = next(r for r in clf.history_ if r["best"])
    assert best["validation:accuracy"] == pytest.approx(clf.score(X[200:], y[200:]))
    assert best["validation:cross_entropy"] == pytest.approx(log_loss(y[200:], clf.predict_proba(X[200:])), rel=1e-5)
    # validation_fraction: 75 held-out records are scored, not 75 x (1 + 3) augmented ones
    clf = Object2VecClassifier(**dict(POOLED, epochs=3, validation_fraction=0.25), negative_sampling_rate=3).fit(X, y)
    for record in clf.history_:
        assert record["validation:accuracy"] * 75 == pytest.approx(round(record["validation:accuracy"] * 75))


def test_regression_with_negative_sampling_is_an_error():
    X, y = make_score_pairs(60)
    with pytest.raises(ValueError, match="negative_sampling_rate applies to classification"):
        Object2VecRegressor(**FAST, negative_sampling_rate=2).fit(X, y)
    with pytest.raises(ValueError, match="integer labels"):
        Object2VecClassifier(**FAST, negative_sampling_rate=2).fit(X[:20], ["a", "b"] * 10)


# ------------------------------------------------------------------ tied table
def test_tied_weights_share_one_tensor(tmp_path):
    X, y = make_topic_pairs(300, seed=5)
    X = X + [{"in0": [1], "in1": [150]}]  # id 150 only ever appears in in1
    y = np.r_[y, 1]
    clf = Object2VecClassifier(**dict(FAST, epochs=2), tied_token_embedding_weight=True, enc1_network="bilstm",
                               enc1_token_embedding_dim=16)
    clf.fit(X, y)
    net = clf.net_
    assert net.token_table(0) is net.token_table(1)
    assert net.token_table(0).weight.data_ptr() == net.token_table(1).weight.data_ptr()
    assert [k for k in net.state_dict() if "token_embedding" in k] == ["token_embedding0.weight"]
    assert clf.vocab_sizes_ == (151, 151)  # one vocabulary covering both sides
    assert net.encoder0 is not net.encoder1  # only the table is shared
    # the in1-only token's row was trained through enc1 in the one table
    untrained = Object2VecClassifier(**dict(FAST, epochs=1, learning_rate=1e-6), tied_token_embedding_weight=True,
                                     enc1_network="bilstm", enc1_token_embedding_dim=16).fit(X, y)
    assert not torch.allclose(net.token_table(0).weight[150], untrained.net_.token_table(0).weight[150], atol=1e-3)
    # sharing survives the safe artifact
    loaded = skobject2vec.load(clf.save(tmp_path / "tied"))
    assert loaded.net_.token_table(0) is loaded.net_.token_table(1)
    assert np.array_equal(loaded.predict_proba(X[:20]), clf.predict_proba(X[:20]))


def test_tied_weights_mismatch_errors():
    X, y = make_topic_pairs(100, seed=6)
    with pytest.raises(ValueError, match="enc0_vocab_size=100 and enc1_vocab_size=120 differ"):
        Object2VecClassifier(**FAST, tied_token_embedding_weight=True, enc1_network="hcnn", enc0_vocab_size=100,
                             enc1_vocab_size=120).fit(X, y)
    with pytest.raises(ValueError, match="token embedding dims differ: enc0 16 vs enc1 8"):
        Object2VecClassifier(**FAST, tied_token_embedding_weight=True, enc1_network="hcnn",
                             enc1_token_embedding_dim=8).fit(X, y)


# ------------------------------------------------------------ pretrained tables
VOCAB_SIZE = 100  # topic_pairs uses ids 0..99


def write_glove(path, vectors: dict, header=False, compress=False):
    lines = [f"{len(vectors)} {len(next(iter(vectors.values())))}"] if header else []
    lines += [f"{tok} " + " ".join(f"{v:.6f}" for v in vec) for tok, vec in vectors.items()]
    text = "\n".join(lines) + "\n"
    if compress:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.fixture
def glove(tmp_path):
    """8-dimensional vectors for the even ids 0..118 (ids >= 100 are unseen in training)."""
    rng = np.random.default_rng(0)
    vocab = {f"w{i}": i for i in range(120)}
    vectors = {f"w{i}": rng.normal(size=8).round(6) for i in range(0, 120, 2)}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    write_glove(tmp_path / "glove.txt", vectors)
    expected = {vocab[tok]: vec for tok, vec in vectors.items()}
    return tmp_path / "glove.txt", tmp_path / "vocab.json", expected


def _pretrained_clf(glove, **params):
    embedding_file, vocab_file, _ = glove
    # enc0_token_embedding_dim=300 is the default, so the file's dimension (8) replaces it
    base = dict(POOLED, enc_dim=8, epochs=3, enc0_token_embedding_dim=300,
                enc0_pretrained_embedding_file=str(embedding_file), enc0_vocab_file=str(vocab_file))
    return Object2VecClassifier(**{**base, **params})


def test_pretrained_rows_loaded_and_frozen(glove):
    _, _, expected = glove
    X, y = make_topic_pairs(300, seed=7)
    clf = _pretrained_clf(glove).fit(X, y)
    table = clf.net_.token_table(0)
    assert table.weight.shape == (121, 8)  # vocab from the vocab file (120 ids) + unknown row
    assert clf.vocab_sizes_[0] == 120 and not table.weight.requires_grad
    ids = np.array(sorted(expected))
    np.testing.assert_allclose(table.weight.detach().numpy()[ids], np.stack([expected[i] for i in ids]), atol=1e-6)
    # An id only in the vocab file keeps its pretrained vector at predict time (frozen GloVe's point).
    emb = clf.transform([{"in0": [118]}])
    np.testing.assert_allclose(emb[0], expected[118], atol=1e-6)
    # the other table and the encoders did train
    assert clf.net_.token_table(1).weight.requires_grad


def test_unfrozen_pretrained_rows_change(glove):
    _, _, expected = glove
    X, y = make_topic_pairs(300, seed=7)
    clf = _pretrained_clf(glove, enc0_freeze_pretrained_embedding=False).fit(X, y)
    weight = clf.net_.token_table(0).weight.detach().numpy()
    seen = [i for i in expected if i < VOCAB_SIZE]
    assert clf.net_.token_table(0).weight.requires_grad
    assert np.abs(weight[seen] - np.stack([expected[i] for i in seen])).max(axis=1).min() > 1e-4
    unseen = [i for i in expected if i >= VOCAB_SIZE]  # never in a batch: untouched
    np.testing.assert_allclose(weight[unseen], np.stack([expected[i] for i in unseen]), atol=1e-6)


def test_ids_without_vector_keep_random_init(glove):
    embedding_file, vocab_file, expected = glove
    torch.manual_seed(0)
    table = torch.nn.Embedding(121, 8)
    before = table.weight.detach().clone()
    load_pretrained_table(table, embedding_file, vocab_file, freeze=True, side="enc0")
    odd = list(range(1, 120, 2))
    assert torch.equal(table.weight[odd], before[odd]) and torch.equal(table.weight[120], before[120])
    assert not table.weight.requires_grad


def test_pretrained_formats(tmp_path):
    vectors = {"the": [0.1, 0.2, 0.3], ". . .": [1.0, 2.0, 3.0], "cat": [-1.0, 0.0, 1e-3]}
    vocab = {"the": 4, ". . .": 0, "cat": 2, "<pad>": 7}
    want = {4: vectors["the"], 0: vectors[". . ."], 2: vectors["cat"]}
    for name, kw in {"glove.txt": {}, "w2v.txt": dict(header=True), "glove.txt.gz": dict(compress=True)}.items():
        ids, rows = read_pretrained_vectors(write_glove(tmp_path / name, vectors, **kw), vocab, dim=3)
        assert sorted(ids.tolist()) == sorted(want) and rows.dtype == np.float32
        np.testing.assert_allclose(rows, [want[i] for i in ids], atol=1e-6)
    ids, _ = read_pretrained_vectors(tmp_path / "glove.txt")  # no vocab file: line order
    assert ids.tolist() == [0, 1, 2]


@pytest.mark.parametrize("content,message", [
    ("a 1 2 3\nb 1 2\n", r"glove\.txt:2: 2 values after the token, expected 3"),
    ("a 1 2 3\nb 1 2 3 4\n", r"glove\.txt:2: 4 values after the token, expected 3"),
    ("a 1 2 3\n\nb 1 x 3\n", r"glove\.txt:3: 'x' is not a number \(token 'b'\)"),
    ("2 3\na 1 2 3\nb 1 2\n", r"glove\.txt:3: 2 values after the token, expected 3"),
    ("a 1 2 3 4\n", r"glove\.txt:1: vectors have 4 values but the token table has dimension 3"),
    ("lonely\n", r"glove\.txt:1: expected 'token v1 v2 \.\.\.'"),
])
def test_malformed_pretrained_file_names_line(tmp_path, content, message):
    path = tmp_path / "glove.txt"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_pretrained_vectors(path, {"a": 0, "b": 1}, dim=3)


def test_pretrained_errors_in_fit(glove, tmp_path):
    embedding_file, vocab_file, _ = glove
    X, y = make_topic_pairs(100, seed=8)
    with pytest.raises(ValueError, match=r"glove\.txt:1: enc0_pretrained_embedding_file has 8-dimensional vectors "
                                         r"but enc0_token_embedding_dim=16"):
        _pretrained_clf(glove, enc0_token_embedding_dim=16).fit(X, y)
    with pytest.raises(ValueError, match=r"vocab\.json: id 118 is outside enc0's vocabulary of 110 ids"):
        _pretrained_clf(glove, enc0_vocab_size=110).fit(X, y)
    (tmp_path / "bad_vocab.json").write_text('{"w0": 0, "w2": "two"}')
    with pytest.raises(ValueError, match=r"bad_vocab\.json: token 'w2' maps to 'two'"):
        _pretrained_clf(glove, enc0_vocab_file=str(tmp_path / "bad_vocab.json")).fit(X, y)
    with pytest.raises(ValueError, match="takes one pretrained file"):
        _pretrained_clf(glove, tied_token_embedding_weight=True, enc1_pretrained_embedding_file=str(
            write_glove(tmp_path / "other.txt", {"w1": np.ones(8)})), enc1_vocab_file=str(vocab_file)).fit(X, y)


def test_tied_table_takes_the_pretrained_file(glove):
    _, _, expected = glove
    X, y = make_topic_pairs(200, seed=9)
    clf = _pretrained_clf(glove, tied_token_embedding_weight=True, enc1_network="hcnn").fit(X, y)
    table = clf.net_.token_table(1)
    assert table is clf.net_.token_table(0) and table.weight.shape == (121, 8) and not table.weight.requires_grad
    np.testing.assert_allclose(table.weight.detach().numpy()[118], expected[118], atol=1e-6)


# ------------------------------------------------------------------ row_sparse
@pytest.mark.parametrize("optimizer", ["adam", "adagrad", "sgd"])
def test_row_sparse_trains(optimizer, topic_data):
    X, y, X_test, y_test = topic_data
    lr = {"adam": 0.05, "adagrad": 0.5, "sgd": 1.0}[optimizer]
    epochs = 15 if optimizer == "sgd" else 6  # plain SGD leaves its plateau after 6-10 epochs, by seed
    # one table per side
    clf = Object2VecClassifier(**dict(POOLED, epochs=epochs, learning_rate=lr), optimizer=optimizer,
                               shared_encoder=False, token_embedding_storage_type="row_sparse").fit(X, y)
    assert clf.net_.token_table(0).sparse and clf.net_.token_table(1).sparse
    assert clf.score(X_test, y_test) > 0.85
    assert all(p.grad is None for p in clf.net_.parameters())  # fit keeps no stale gradients
    # gradients on the tables are sparse, and one step touches only the batch's rows
    net = clf.net_.train()
    optimizers = training.make_optimizers(net, optimizer, 0.1, 0.0, sparse=True)
    kinds = {type(o).__name__ for o in optimizers}
    expected = {"adam": {"RowSparseAdam", "Adam"}, "adagrad": {"RowSparseAdagrad", "Adagrad"}, "sgd": {"SGD"}}
    assert kinds == expected[optimizer]
    # records {"in0": [1, 2], "in1": [30]} and {"in0": [2], "in1": [31, 32]}
    pairs = PairData(Ragged(np.array([1, 2, 2]), np.array([0, 2, 3])),
                     Ragged(np.array([30, 31, 32]), np.array([0, 1, 3])))
    inputs = Batcher(clf.max_seq_lens_, clf.vocab_sizes_, torch.device("cpu")).pair(pairs, np.arange(2))
    before = net.token_table(0).weight.detach().clone()
    loss = net(*inputs).logsumexp(1).sum()
    loss.backward()
    assert net.token_table(0).weight.grad.is_sparse
    grad = net.token_table(0).weight.grad.coalesce()
    # rows 1 and 2 (row 0 may appear with a zero gradient: the padding position)
    assert grad.indices()[0][grad.values().abs().sum(1) > 0].tolist() == [1, 2]
    for opt in optimizers:
        opt.step()
    changed = (net.token_table(0).weight.detach() != before).any(dim=1).nonzero().ravel().tolist()
    assert changed == [1, 2]


def _twin_tables_stepped(make_ours, make_theirs, steps: int, dtype=torch.float32):
    """Two copies of one 50 x 6 sparse table, one stepped by ``make_ours(params)``, the other by
    ``make_theirs(params)``, on the same ``steps`` batches of 12 ids with repeats (rows 20-49 never
    touched): ``(tables, initial weights, ours, theirs)``."""
    torch.manual_seed(0)
    tables = [torch.nn.Embedding(50, 6, sparse=True).to(dtype) for _ in range(2)]
    tables[1].load_state_dict(tables[0].state_dict())
    initial = tables[0].weight.detach().clone()
    ours, theirs = make_ours(tables[0].parameters()), make_theirs(tables[1].parameters())
    rng = np.random.default_rng(0)
    for _ in range(steps):
        ids = torch.from_numpy(rng.integers(0, 20, 12))
        for table, opt in ((tables[0], ours), (tables[1], theirs)):
            opt.zero_grad()
            table(ids).pow(3).sum().backward()
            opt.step()
    return tables, initial, ours, theirs


def test_row_sparse_adagrad_steps_as_torch_adagrad_on_the_touched_rows_only():
    # RowSparseAdagrad computes torch's sparse Adagrad update on row blocks: the same values (lr_decay and
    # all), over several steps with repeated rows in a batch; rows no batch touched keep their exact bits
    from skobject2vec.optim import RowSparseAdagrad

    tables, initial, ours, theirs = _twin_tables_stepped(
        lambda params: RowSparseAdagrad(params, lr=0.3, lr_decay=0.01),
        lambda params: torch.optim.Adagrad(params, lr=0.3, lr_decay=0.01), steps=5, dtype=torch.float64)
    ours_w, theirs_w = (t.weight.detach() for t in tables)
    np.testing.assert_allclose(ours_w.numpy(), theirs_w.numpy(), rtol=1e-12)
    assert not torch.equal(ours_w[:20], initial[:20])
    assert torch.equal(ours_w[20:], initial[20:])
    assert ours.state_dict()["state"][0]["step"] == theirs.state_dict()["state"][0]["step"] == 5


@pytest.mark.parametrize("maximize", [False, True])
def test_row_sparse_adam_steps_as_torch_sparse_adam_to_the_bit_on_the_touched_rows_only(maximize):
    # RowSparseAdam computes SparseAdam's update in the same float operations on row blocks: identical
    # weights and moments after several steps with repeated rows in a batch; untouched rows keep their bits
    from skobject2vec.optim import RowSparseAdam

    tables, initial, ours, theirs = _twin_tables_stepped(
        lambda params: RowSparseAdam(params, lr=0.03, maximize=maximize),
        lambda params: torch.optim.SparseAdam(params, lr=0.03, maximize=maximize), steps=6)
    ours_w, theirs_w = (t.weight.detach() for t in tables)
    assert torch.equal(ours_w, theirs_w)
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(ours.state[tables[0].weight][key], theirs.state[tables[1].weight][key])
    assert not torch.equal(ours_w[:20], initial[:20])
    assert torch.equal(ours_w[20:], initial[20:])
    assert ours.state_dict()["state"][0]["step"] == theirs.state_dict()["state"][0]["step"] == 6
    with pytest.raises(RuntimeError, match="dense gradients"):
        tables[0].weight.grad = torch.ones_like(tables[0].weight)
        ours.step()


@pytest.mark.parametrize("name, kwargs", [
    ("Adam", {"fused": True, "weight_decay": 0.01}), ("Adagrad", {"fused": True, "lr_decay": 0.01}),
    ("Adadelta", {"lr": 1.0}), ("SGD", {"momentum": 0.9}), ("RMSprop", {"weight_decay": 0.01})])
def test_eager_optimizers_step_as_torch_to_the_bit(name, kwargs):
    # skobject2vec.optim's optimizers run torch's own step without its torch.compile guard: the same floats,
    # a closure's loss, and a state_dict that torch's class loads
    from skobject2vec import optim

    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    kwargs = {"lr": 0.05, **kwargs}
    ours, theirs = getattr(optim, name)(nets[0].parameters(), **kwargs), getattr(torch.optim, name)(
        nets[1].parameters(), **kwargs)
    x, y = torch.randn(16, 5), torch.randn(16, 1)

    def closure(net, opt):
        def loss():
            opt.zero_grad()
            value = torch.nn.functional.mse_loss(net(x), y)
            value.backward()
            return value
        return loss

    for _ in range(4):
        losses = [opt.step(closure(net, opt)) for net, opt in zip(nets, (ours, theirs))]
        assert losses[0].item() == losses[1].item()
    for ours_p, theirs_p in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(ours_p, theirs_p)
    state = ours.state_dict()
    getattr(torch.optim, name)(nets[1].parameters(), **kwargs).load_state_dict(state)
    assert isinstance(ours, getattr(torch.optim, name))


def test_fit_save_load_predict_do_not_import_torch_dynamo(tmp_path):
    # torch's optimizers import torch._dynamo on first use (1.2-1.4 s on two cores), and so does its reference
    # implementation of init on the meta device: a fresh process's first fit, and the first model a server or
    # the CLI loads, would cost ten times a small fit's own time. Checked in a fresh interpreter, over the
    # optimizers, sparse tables, an hcnn, a classifier, and a saved model loaded and used
    import subprocess
    import sys

    code = f"""
import sys
import numpy as np
import skobject2vec
from skobject2vec import Object2VecClassifier, Object2VecRegressor
rng = np.random.default_rng(0)
X = np.c_[rng.integers(0, 300, 600), rng.integers(0, 400, 600)]
y = rng.normal(size=600)
Object2VecRegressor(random_state=0, epochs=2).fit(X, y).predict(X)
for optimizer in ("adam", "adagrad", "sgd"):
    Object2VecRegressor(random_state=0, epochs=1, optimizer=optimizer, token_embedding_storage_type="row_sparse",
                        weight_decay=0.01).fit(X, y)
for optimizer in ("adadelta", "rmsprop"):
    Object2VecRegressor(random_state=0, epochs=1, optimizer=optimizer).fit(X, y)
Object2VecClassifier(random_state=0, epochs=2, enc0_network="hcnn").fit(X, y > 0).save({str(tmp_path)!r})
loaded = skobject2vec.load({str(tmp_path)!r})
loaded.predict_proba(X[:5]), loaded.transform([{{"in0": [1]}}])
print(sorted(m for m in sys.modules if m.startswith("torch._dynamo")))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("optimizer", ["rmsprop", "adadelta"])
def test_row_sparse_rejects_dense_only_optimizers(optimizer):
    X, y = make_topic_pairs(50)
    with pytest.raises(ValueError, match=f"needs optimizer adam, adagrad or sgd.*got optimizer='{optimizer}'"):
        Object2VecClassifier(**FAST, optimizer=optimizer, token_embedding_storage_type="row_sparse").fit(X, y)


def test_row_sparse_is_the_default_over_a_large_vocabulary_where_the_optimizer_has_sparse_updates():
    X, y = make_topic_pairs(50)
    assert not Object2VecClassifier(**dict(FAST, epochs=1)).fit(X, y).net_.token_table(0).sparse  # 100 ids: dense
    big = np.random.default_rng(0).integers(0, 20_000, size=(200, 2))
    reg = Object2VecRegressor(**dict(FAST, epochs=1)).fit(big, np.arange(200.0))
    assert reg.net_.token_table(0).sparse and reg.net_.token_table(1).sparse
    assert not Object2VecRegressor(**dict(FAST, epochs=1, optimizer="rmsprop")).fit(big, np.arange(200.0)) \
        .net_.token_table(0).sparse
    explicit = Object2VecRegressor(**dict(FAST, epochs=1, token_embedding_storage_type="dense")).fit(
        big, np.arange(200.0))
    assert not explicit.net_.token_table(0).sparse
    # a migrated SageMaker job keeps SageMaker's dense storage
    assert from_sagemaker_hyperparameters({}).get_params()["token_embedding_storage_type"] == "dense"


def test_auto_storage_keeps_a_small_table_dense_beside_a_large_sparse_one():
    # 300 users against 20,000 items: the users' table takes a dense step (cheaper than the sparse
    # bookkeeping at that size, and every row decays every step as with dense storage), the items' sparse rows
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 300, 400), rng.integers(0, 20_000, 400)])
    y = rng.normal(size=400)
    reg = Object2VecRegressor(**dict(FAST, epochs=2)).fit(X, y)
    assert not reg.net_.token_table(0).sparse and reg.net_.token_table(1).sparse
    assert reg.net_.config["sparse"] and reg.net_.config["sparse_tables"] == [False, True]
    assert np.isfinite(reg.predict(X)).all()
    # SageMaker's "row_sparse", given, is every table's
    given = Object2VecRegressor(**dict(FAST, epochs=1, token_embedding_storage_type="row_sparse")).fit(X, y)
    assert given.net_.token_table(0).sparse and given.net_.token_table(1).sparse
    # a network saved before the per-table choice (no "sparse_tables") builds every table sparse
    from skobject2vec.nn.model import Object2VecNet

    old = {k: v for k, v in reg.net_.config.items() if k != "sparse_tables"}
    assert Object2VecNet(old).token_table(0).sparse


def test_auto_storage_keeps_a_table_dense_when_a_step_reads_most_of_its_rows():
    # A user followed by the 100 items the user rated (SVD++'s input) against one item: each step reads
    # 32 x 101 rows of the 6,000-row first table, over half of it, so it takes the dense step (a sparse
    # gradient would carry one row per token); the items' table, read once per record, keeps sparse rows.
    rng = np.random.default_rng(0)
    n_users, n_items = 100, 5_900
    X = [{"in0": [int(u)] + (n_users + rng.choice(n_items, 100, replace=False)).tolist(),
          "in1": [int(rng.integers(n_items))]} for u in rng.integers(0, n_users, 400)]
    X[0]["in1"] = [n_items + n_users - 1]  # the largest id: both tables hold 6,000 rows
    y = rng.normal(size=400)
    reg = Object2VecRegressor(**dict(FAST, epochs=1, mini_batch_size=32)).fit(X, y)
    assert reg.net_.config["sparse_tables"] == [False, True]
    assert not reg.net_.token_table(0).sparse and reg.net_.token_table(1).sparse
    # one context item per user: 32 x 2 rows a step, a sparse table again
    short = [{"in0": r["in0"][:2], "in1": r["in1"]} for r in X]
    assert Object2VecRegressor(**dict(FAST, epochs=1, mini_batch_size=32)).fit(short, y).net_.config[
        "sparse_tables"] == [True, True]


def _two_nets(sparse_seed=0, vocab=40):
    config = {"vocab_sizes": [vocab, vocab], "token_dims": [4, 4], "networks": ["pooled_embedding"] * 2,
              "layers": [1, 1], "filter_widths": [3, 3], "enc_dim": 4, "comparator": ["hadamard"],
              "mlp_layers": 0, "mlp_dim": 4, "mlp_activation": "relu", "dropout": 0.0, "n_outputs": 1,
              "tied": False, "sparse": False}
    torch.manual_seed(sparse_seed)
    dense = Object2VecNet(config).double()
    sparse = Object2VecNet(dict(config, sparse=True)).double()
    sparse.load_state_dict(dense.state_dict())
    return dense, sparse


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
def test_lazy_weight_decay_of_sparse_rows_matches_dense_decay(optimizer):
    # Rows a step does not touch are decayed when next touched (and at the end of the epoch), in closed
    # form: exactly dense SGD's decay; Adagrad's with one factor per row (see training._idle_decay_factor).
    dense, sparse = _two_nets()
    opts = {name: training.make_optimizers(net, optimizer, 0.1, 0.05, sparse=name == "sparse")
            for name, net in (("dense", dense), ("sparse", sparse))}
    rng = np.random.default_rng(0)
    for step in range(30):
        ids0 = torch.from_numpy(rng.integers(0, 10 if step % 3 else 40, (8, 1)))  # most rows idle most steps
        ids1 = torch.from_numpy(rng.integers(0, 40, (8, 1)))
        lengths = torch.ones(8, dtype=torch.int64)
        for name, net in (("dense", dense), ("sparse", sparse)):
            for opt in opts[name]:
                opt.zero_grad(set_to_none=True)
            if name == "sparse":
                before = net.token_table(0).weight.detach().clone()
                training.catch_up_rows(opts[name], [(net.token_table(0).weight, ids0),
                                                    (net.token_table(1).weight, ids1)])
            net(ids0, lengths, ids1, lengths).pow(2).mean().backward()
            if name == "sparse":
                training.decay_touched_rows(opts[name])
                for opt in opts[name]:
                    opt.step()
                changed = (net.token_table(0).weight.detach() != before).any(1).nonzero().ravel()
                assert set(changed.tolist()) <= set(ids0.ravel().tolist())  # a step writes its batch's rows only
            else:
                for opt in opts[name]:
                    opt.step()
    training.flush_row_decay(opts["sparse"])
    initial = _two_nets()[0].token_table(0).weight.detach()[10:].abs().mean()
    for side in (0, 1):
        lazy, every_step = (net.token_table(side).weight.detach() for net in (sparse, dense))
        if optimizer == "sgd":
            np.testing.assert_allclose(lazy.numpy(), every_step.numpy(), rtol=1e-9, atol=1e-12)
        else:  # Adagrad: one closed-form factor per row (its mean squared sum), not per coordinate
            if side == 0:  # ids 0-9, in most steps: the same rows to a factor (decay here is 25x the default's)
                assert (lazy[:10] - every_step[:10]).norm() < 0.8 * every_step[:10].norm()
            # idle rows: dense Adagrad drives them to ~0 (each idle step moves lr / sqrt(its own sums));
            # the closed form, holding the sums constant, shrinks them at least as much
            assert lazy[10:].abs().mean() <= every_step[10:].abs().mean() < 0.25 * initial
    assert sparse.token_table(0).weight.detach()[10:].abs().mean() < 0.9 * initial  # rarely used rows shrank



@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
def test_flush_in_blocks_gives_the_whole_table_flush_to_the_bit(optimizer, monkeypatch):
    # The epoch's flush walks a table in blocks of rows (whole-table temporaries cost page faults);
    # every row, each with its own idle count and Adagrad sums, gets the same floats either way.
    def flushed(block_rows):
        monkeypatch.setattr(training, "FLUSH_BLOCK_ROWS", block_rows)
        net = _two_nets(sparse_seed=3)[1]
        opts = training.make_optimizers(net, optimizer, 0.1, 0.05, sparse=True)
        rng = np.random.default_rng(1)
        lengths = torch.ones(8, dtype=torch.int64)
        for _ in range(12):
            ids0, ids1 = (torch.from_numpy(rng.integers(0, 40, (8, 1))) for _ in range(2))
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            training.catch_up_rows(opts, [(net.token_table(0).weight, ids0), (net.token_table(1).weight, ids1)])
            net(ids0, lengths, ids1, lengths).pow(2).mean().backward()
            training.decay_touched_rows(opts)
            for opt in opts:
                opt.step()
        before = net.token_table(0).weight.detach().clone()
        training.flush_row_decay(opts)
        assert (net.token_table(0).weight.detach() != before).any(1).sum() > 10  # idle rows shrank
        sums = [opts[0].state[p].get("sum") for p in opts[0].param_groups[0]["params"]]
        tables = [net.token_table(side).weight.detach().clone() for side in (0, 1)]
        return tables + [s.clone() for s in sums if s is not None]

    whole, blocks = flushed(10_000), flushed(7)  # 41 rows: six blocks of 7 and a last one of 6
    assert len(whole) == (4 if optimizer == "adagrad" else 2)
    for a, b in zip(whole, blocks):
        assert torch.equal(a, b)



@pytest.mark.parametrize("extra_rows", [False, True])
def test_rows_held_from_catch_up_to_step_give_the_same_floats(extra_rows, monkeypatch):
    # RowSparseAdagrad keeps a step's caught-up rows and their grown sums from the catch-up to its step, and
    # writes rows through numpy: the same floats as writing the sums back at once with index_copy_. With
    # extra_rows the catch-up reads rows the gradient does not hold (as when some lookups are padding):
    # the step falls back to the table's own rows.
    from skobject2vec import optim

    def trained(reference):
        if reference:
            monkeypatch.setattr(optim, "put_rows", lambda table, rows, values: table.index_copy_(0, rows, values))
            monkeypatch.setattr(training, "put_rows", optim.put_rows)
            monkeypatch.setattr(optim.RowSparseAdagrad, "hold_rows",
                                lambda self, p, rows, values, sums: optim.put_rows(self.state[p]["sum"], rows, sums))
        net = _two_nets(sparse_seed=5)[1]
        opts = training.make_optimizers(net, "adagrad", 0.1, 0.05, sparse=True)
        rng = np.random.default_rng(2)
        lengths = torch.ones(8, dtype=torch.int64)
        for _ in range(15):
            ids0, ids1 = (torch.from_numpy(rng.integers(0, 40, (8, 1))) for _ in range(2))
            read0 = torch.cat([ids0, torch.from_numpy(rng.integers(0, 40, (3, 1)))]) if extra_rows else ids0
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            caught_up = training.catch_up_rows(opts, [(net.token_table(0).weight, read0),
                                                      (net.token_table(1).weight, ids1)])
            net(ids0, lengths, ids1, lengths).pow(2).mean().backward()
            training.decay_touched_rows(opts, caught_up)
            for opt in opts:
                opt.step()
        training.flush_row_decay(opts)
        monkeypatch.undo()
        sums = [opts[0].state[p]["sum"] for p in opts[0].param_groups[0]["params"]]
        return [net.token_table(side).weight.detach().clone() for side in (0, 1)] + [s.clone() for s in sums]

    reference, held = trained(True), trained(False)
    assert not torch.equal(reference[0], _two_nets(sparse_seed=5)[1].token_table(0).weight.detach())  # it trained
    for a, b in zip(reference, held):
        assert torch.equal(a, b)



def test_rows_held_for_a_step_never_outlive_a_state_dict():
    # Sums held between a catch-up and its step belong in the table: state_dict() writes them back
    # first, and load_state_dict() drops them (they would overwrite the loaded sums at the step).
    net = _two_nets(sparse_seed=1)[1]
    opt = training.make_optimizers(net, "adagrad", 0.1, 0.05, sparse=True)[0]
    table = net.token_table(0).weight

    def step(ids, lazy_decay=True):
        opt.zero_grad(set_to_none=True)
        if lazy_decay:
            training.catch_up_rows([opt], [(table, ids)])
        table.grad = torch.sparse_coo_tensor(ids.T, torch.ones(len(ids), 4, dtype=table.dtype), table.shape,
                                             check_invariants=True)
        if lazy_decay:
            training.decay_touched_rows([opt])
        opt.step()

    for _ in range(3):
        step(torch.tensor([[1]]))  # rows 3 and 7 sit idle
    before = opt.state[table]["sum"][[3, 7]].clone()
    training.catch_up_rows([opt], [(table, torch.tensor([[3], [7]]))])  # their idle decay grows their sums
    assert (opt.state_dict()["state"][0]["sum"][[3, 7]] > before).all()  # written back by state_dict()

    saved = copy.deepcopy(opt.state_dict())
    training.catch_up_rows([opt], [(table, torch.tensor([[5]]))])  # holds row 5's grown sums
    opt.load_state_dict(copy.deepcopy(saved))
    step(torch.tensor([[5]]), lazy_decay=False)  # the gradient alone: the sums grow by 1
    assert torch.equal(opt.state[table]["sum"][5], saved["state"][0]["sum"][5] + 1)  # loaded sums + this step's



@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("eps", [1e-8, 1e-10, 1e-30, 0.0])
def test_sqrt_plus_eps_gives_torchs_floats(dtype, eps):
    # The row-sparse optimizers' sqrt(v) + eps skips torch's slow CPU root of zeros by raising v to the
    # smallest normal float first, only where eps absorbs every root below it (not for eps 1e-30 or 0).
    from skobject2vec.optim import sqrt_plus

    g = torch.Generator().manual_seed(0)
    tiny = torch.finfo(dtype).tiny
    v = torch.rand(300, 64, generator=g, dtype=dtype) * torch.logspace(-40, 3, 300, dtype=dtype).unsqueeze(1)
    v[torch.rand(v.shape, generator=g) < 0.5] = 0
    v[0, :4] = torch.tensor([tiny / 8, tiny, float("inf"), float("nan")], dtype=dtype)  # subnormal, inf, nan
    expected = v.sqrt().add_(eps)
    got = sqrt_plus(v, eps)
    assert torch.equal(got.nan_to_num(-1.0), expected.nan_to_num(-1.0))
    assert got.data_ptr() != v.data_ptr()  # a new tensor: the values (an optimizer's sums) are kept


# ------------------------------------------------------------------- bucketing
def test_bucketing_batches_respect_width_and_cover_everything():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, 1000)
    for width in (1, 3, 10):
        batches = batch_indices(1000, 32, shuffle=True, rng=np.random.default_rng(7), lengths=lengths,
                                bucket_width=width)
        assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(1000))
        assert all(1 <= len(b) <= 32 for b in batches)
        assert all(lengths[b].max() - lengths[b].min() <= width for b in batches)
        again = batch_indices(1000, 32, shuffle=True, rng=np.random.default_rng(7), lengths=lengths,
                              bucket_width=width)
        assert all(np.array_equal(a, b) for a, b in zip(batches, again))
        other = batch_indices(1000, 32, shuffle=True, rng=np.random.default_rng(8), lengths=lengths,
                              bucket_width=width)
        assert not all(np.array_equal(a, b) for a, b in zip(batches, other))
    # batches are shuffled: not in length order
    firsts = [lengths[b].min() for b in batches]
    assert firsts != sorted(firsts)


def test_bucketing_fit_is_deterministic(topic_data):
    X, y, X_test, y_test = topic_data
    params = dict(POOLED, epochs=3, bucket_width=2, random_state=3)
    a = Object2VecClassifier(**params).fit(X, y)
    b = Object2VecClassifier(**params).fit(X, y)
    assert np.array_equal(a.predict_proba(X_test), b.predict_proba(X_test))
    assert a.score(X_test, y_test) > 0.8


# --------------------------------------------------- SageMaker hyperparameters
NOTEBOOK_HP = {  # as SageMaker sends them: every value a string
    "enc0_max_seq_len": "20", "enc0_vocab_size": "100", "enc_dim": "16", "enc0_network": "pooled_embedding",
    "enc1_network": "enc0", "enc0_layers": "auto", "enc0_token_embedding_dim": "16", "mlp_layers": "1",
    "mlp_dim": "32", "mlp_activation": "relu", "output_layer": "softmax", "num_classes": "3",
    "negative_sampling_rate": "0", "tied_token_embedding_weight": "true",
    "token_embedding_storage_type": "row_sparse", "bucket_width": "0", "epochs": "2", "mini_batch_size": "64",
    "learning_rate": "0.01", "optimizer": "adam", "dropout": "0.1", "early_stopping_patience": "3",
    "early_stopping_tolerance": "0.01", "weight_decay": "0", "enc0_freeze_pretrained_embedding": "False",
    "enc0_pretrained_embedding_file": "", "enc0_vocab_file": "", "comparator_list": "hadamard, abs_diff",
    "_kvstore": "device", "_num_gpus": "auto", "_num_kv_servers": "auto",
    "_tuning_objective_metric": "validation:accuracy",  # every hyperparameter-tuning job adds it
}


def test_sagemaker_hyperparameters_as_strings():
    est = from_sagemaker_hyperparameters(NOTEBOOK_HP, random_state=0)
    assert isinstance(est, Object2VecClassifier)
    p = est.get_params()
    assert p["enc0_max_seq_len"] == 20 and p["enc_dim"] == 16 and p["learning_rate"] == 0.01
    assert p["tied_token_embedding_weight"] is True and p["enc0_freeze_pretrained_embedding"] is False
    assert p["enc0_layers"] == "auto" and p["enc0_pretrained_embedding_file"] is None
    assert p["num_classes"] == 3 and p["random_state"] == 0
    assert not any(k.startswith("_") for k in p)  # MXNet plumbing ignored
    X, y = make_topic_pairs(200)
    est.fit(X, y)
    assert est.classes_.tolist() == [0, 1, 2]  # num_classes honoured though class 2 is absent
    assert est.net_.token_table(0) is est.net_.token_table(1) and est.net_.token_table(0).sparse
    regressor = from_sagemaker_hyperparameters({**NOTEBOOK_HP, "output_layer": "mean_squared_error"})
    assert isinstance(regressor, Object2VecRegressor)
    with pytest.raises(ValueError, match="output_layer='mean_squared_error' does not match Object2VecClassifier"):
        Object2VecClassifier.from_sagemaker_hyperparameters({"output_layer": "mean_squared_error"})
    for text, value in [("TRUE", True), ("True", True), ("false", False), ("False", False)]:
        params = from_sagemaker_hyperparameters({"tied_token_embedding_weight": text}).get_params()
        assert params["tied_token_embedding_weight"] is value


@pytest.mark.parametrize("name,value,message", [
    ("feature_dim", "3", "Unknown hyperparameter 'feature_dim'"),
    ("epochs", "0", r"'epochs': '?0'?; expected int in \[1, 100\]"),
    ("epochs", "3.5", r"'epochs': '?3.5'?; expected int"),
    ("enc0_vocab_size", "1", r"'enc0_vocab_size': '?1'?; expected int in \[2, 3000000\]"),
    ("learning_rate", "2", r"'learning_rate': '?2(\.0)?'?; expected float in \[1e-06, 1\]"),
    ("num_classes", "31", r"'num_classes': '?31'?; expected int in \[2, 30\]"),
    ("mlp_layers", "11", r"'mlp_layers': '?11'?"),
    ("negative_sampling_rate", "101", r"'negative_sampling_rate': '?101'?"),
    ("bucket_width", "-1", r"'bucket_width': '?-1'?"),
    ("optimizer", "lbfgs", r"'optimizer': '?lbfgs'?; expected 'adam' \| 'adagrad'"),
    ("output_layer", "sigmoid", r"'output_layer': '?sigmoid'?"),
    ("tied_token_embedding_weight", "maybe", r"'tied_token_embedding_weight': '?maybe'?; expected true \| false"),
    ("enc0_layers", "five", r"'enc0_layers': '?five'?; expected int in \[1, 4\] or 'auto'"),
    ("token_embedding_storage_type", "csr", r"'token_embedding_storage_type': '?csr'?"),
])
def test_sagemaker_hyperparameters_rejected_with_name(name, value, message):
    with pytest.raises(ValueError, match=message):
        from_sagemaker_hyperparameters({**NOTEBOOK_HP, name: value})


# ------------------------------------------------------------------ threads
class _ThreadProbe(skobject2vec.callbacks.Callback):
    def on_epoch_begin(self, loop, epoch, n_batches):
        seen.append(torch.get_num_threads())


seen: list = []


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen.clear()
    yield
    torch.set_num_threads(before)


def test_a_fit_runs_on_the_threads_its_work_needs_and_restores_the_callers_count(two_threads):
    X, y = make_topic_pairs(100)
    clf = Object2VecClassifier(**dict(FAST, epochs=1), callbacks=[("probe", _ThreadProbe())]).fit(X, y)
    assert seen == [1] and torch.get_num_threads() == 2  # pooled: one thread, then the caller's 2 again
    Object2VecClassifier(**dict(FAST, epochs=1, enc0_network="hcnn"), callbacks=[_ThreadProbe()]).fit(X, y)
    assert seen[-1] == 2  # hcnn: torch's own setting
    Object2VecClassifier(**dict(FAST, epochs=1), n_threads=None, callbacks=[_ThreadProbe()]).fit(X, y)
    assert seen[-1] == 2  # None: the user's torch.set_num_threads is respected
    clf.set_params(n_threads=3).predict(X)
    Object2VecClassifier(**dict(FAST, epochs=1), n_threads=3, callbacks=[_ThreadProbe()]).fit(X, y)
    assert seen[-1] == 3 and torch.get_num_threads() == 2


def test_thread_count_is_restored_when_fit_or_predict_raises(two_threads, monkeypatch):
    X, y = make_topic_pairs(100)

    class Boom(skobject2vec.callbacks.Callback):
        def on_epoch_end(self, loop, record):
            assert torch.get_num_threads() == 1
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        Object2VecClassifier(**dict(FAST, epochs=1), callbacks=[Boom()]).fit(X, y)
    assert torch.get_num_threads() == 2
    clf = Object2VecClassifier(**dict(FAST, epochs=1)).fit(X, y)

    def failing(*args, **kwargs):
        assert torch.get_num_threads() == 1
        raise RuntimeError("predict failed")

    monkeypatch.setattr(skobject2vec.estimators, "predict_outputs", failing)
    with pytest.raises(RuntimeError, match="predict failed"):
        clf.predict(X)
    assert torch.get_num_threads() == 2


# ------------------------------------------------------------------ numerics
def test_huge_sample_weights_train_a_finite_model():
    X, y = make_score_pairs(300, seed=0)
    reg = Object2VecRegressor(**dict(FAST, epochs=2)).fit(X, y, sample_weight=np.full(len(y), 1e308))
    assert np.isfinite(reg.predict(X)).all() and np.isfinite(reg.history_[-1]["train:mean_squared_error"])
    same = Object2VecRegressor(**dict(FAST, epochs=2)).fit(X, y, sample_weight=np.full(len(y), 3.0))
    np.testing.assert_allclose(reg.predict(X), same.predict(X), rtol=1e-6)  # only the ratios of weights count


def test_a_diverging_fit_raises_and_keeps_the_previous_model():
    X, y = make_topic_pairs(200)
    clf = Object2VecClassifier(**dict(FAST, epochs=1)).fit(X, y)
    before = clf.predict_proba(X)

    class Poison(skobject2vec.callbacks.Callback):
        def on_batch_end(self, loop, running_loss):
            with torch.no_grad():
                loop.net.output.bias.fill_(float("nan"))

    with pytest.raises(ValueError, match="Training diverged: the training loss of epoch 1 is nan") as error:
        clf.set_params(callbacks=[Poison()]).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), before)
    # the first batch's loss came before the poison: the error names the second batch and its records
    assert "first became non-finite at batch 2 of the epoch. It held records " in str(error.value)
    assert "learning_rate=" in str(error.value)


def test_a_diverging_batch_is_described_by_its_records_targets_and_weights():
    from skobject2vec.training import EpochData, describe_records

    # epoch positions 0-3 are records 10-13; positions 4-5 pair in0 of one record with in1 of another
    data = EpochData(left=np.array([10, 11, 12, 13, 10, 12]), right=np.array([10, 11, 12, 13, 13, 11]),
                     target=np.array([0.1, -9.0, 0.2, 0.3, 0.0, 0.0]), weight=np.array([0.5, 0.1, 1.0, 0.2, .5, .5]))
    text = describe_records(data, np.array([5, 1, 2, 4]), "regression")
    assert text == (" It held records 11, 12, 2 sampled negative pairs. Largest sample weight in it: record 12 "
                    "(relative weight 1 of the largest in the data); largest standardised target: record 11 "
                    "(|y - mean| / std = 9).")
    assert "records 10, 11, 12, 13, 10 and 1 more" in describe_records(
        EpochData(np.r_[10:14, 10, 10], np.r_[10:14, 10, 10], np.zeros(6), np.ones(6)), np.arange(6),
        "classification", shown=5)


def test_tables_that_cannot_fit_in_memory_are_refused_before_allocation():
    X = np.array([[0, 1], [2, 3]] * 10)
    reg = Object2VecRegressor(**dict(FAST, epochs=1, enc_dim=10000), enc0_vocab_size=3_000_000,
                              enc1_network="pooled_embedding", enc1_vocab_size=3_000_000)
    with pytest.raises(ValueError, match=r"token tables need about .* GiB .*Lower enc_dim"):
        reg.fit(X, np.arange(20.0))
    assert not hasattr(reg, "net_")


# ------------------------------------------------------------------- dropout
@pytest.mark.parametrize("p", [0.1, 0.3, 0.6])
def test_fast_dropout_drops_with_probability_p_and_keeps_the_mean(p):
    from skobject2vec.nn.dropout import FastDropout

    torch.manual_seed(0)
    layer = FastDropout(p)
    x = torch.ones(400, 513, requires_grad=True)  # an odd element count: the last 32-bit word is half used
    out = layer(x)
    dropped = float((out == 0).float().mean())
    assert abs(dropped - p) < 0.005
    assert torch.allclose(out[out != 0], torch.tensor(1 / (1 - p)))
    out.sum().backward()  # the gradient flows through the kept elements only, scaled
    assert torch.equal(x.grad, out.detach())
    # neighbouring elements (two halves of one random word) are dropped independently
    pairs = (out == 0).view(-1)[: 400 * 512].view(-1, 2).float()
    assert abs(float((pairs[:, 0] * pairs[:, 1]).mean()) - p * p) < 0.005
    layer.eval()
    assert torch.equal(layer(x), x)
    torch.manual_seed(1)
    first = FastDropout(p)(x)
    torch.manual_seed(1)
    assert torch.equal(first, FastDropout(p)(x))  # torch's seed makes the mask reproducible


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dropout_scale_built_in_numpy_equals_the_mask_times_the_scale(dtype):
    # FastDropout's multiplier (numpy) must be the mask of keep_mask under the same seed, times 1 / (1 - p)
    # rounded as torch rounds it: seeded fits give the same numbers whichever path built it
    from skobject2vec.nn.dropout import keep_mask, keep_scale

    torch.manual_seed(3)
    scale = keep_scale((300, 7), 0.3, dtype)
    torch.manual_seed(3)
    expected = keep_mask((300, 7), 0.3).to(dtype).mul_(1 / 0.7)
    assert scale.dtype == dtype and scale.shape == (300, 7)
    assert torch.equal(scale, expected)
    assert 0 < int((scale == 0).sum()) < scale.numel()
