"""Streaming training from JSON Lines files and shard folders (``fit(path)``, ``train --streaming``)."""

import gzip
import json

import numpy as np
import pytest
from support import FAST

from skobject2vec import Object2VecClassifier, Object2VecRegressor, load, training
from skobject2vec.cli import main
from skobject2vec.data.jsonlines import write_records
from skobject2vec.data.streaming import list_shards, rank_records, shuffle_buffer
from skobject2vec.datasets import make_score_pairs
from skobject2vec.parallel import fit_stream

N_RECORDS, BUFFER = 3000, 300  # the file is 10x the shuffle buffer


@pytest.fixture(scope="module")
def numbered_file(tmp_path_factory):
    """Record k has in0 == [k]: the ids the network sees name the records."""
    path = tmp_path_factory.mktemp("stream") / "numbered.jsonl"
    rng = np.random.default_rng(0)
    write_records(({"in0": [k], "in1": rng.integers(0, 50, rng.integers(1, 6)).tolist()} for k in range(N_RECORDS)),
                  path, labels=(k % 2 for k in range(N_RECORDS)))
    return path


def _record_ids_seen(monkeypatch, estimator, path, **kwargs):
    """Fit while logging the in0 id (= record number) of every training row, in order."""
    seen = []
    original = training.training_batches

    def logging_batches(*args, **kw):
        for inputs, target, weight in original(*args, **kw):
            seen.extend(inputs[0][:, 0].tolist())
            yield inputs, target, weight

    monkeypatch.setattr(training, "training_batches", logging_batches)
    fit_stream(estimator, path, **kwargs)
    return np.array(seen)


def _numbered_estimator(**params):
    return Object2VecClassifier(**dict(FAST, enc0_network="pooled_embedding", epochs=2, mini_batch_size=50,
                                       enc0_vocab_size=N_RECORDS, **params))


def test_every_record_seen_once_per_epoch(monkeypatch, numbered_file):
    seen = _record_ids_seen(monkeypatch, _numbered_estimator(), numbered_file, buffer_size=BUFFER)
    assert len(seen) == 2 * N_RECORDS
    epochs = seen.reshape(2, N_RECORDS)
    for order in epochs:
        np.testing.assert_array_equal(np.sort(order), np.arange(N_RECORDS))
    # shuffled, beyond the buffer, and differently in each epoch
    assert not np.array_equal(epochs[0], epochs[1])
    assert np.abs(np.diff(epochs[0])).mean() > BUFFER / 10
    assert abs(np.corrcoef(np.arange(N_RECORDS), epochs[0])[0, 1]) < 0.999


def test_stream_is_deterministic_under_random_state(monkeypatch, numbered_file):
    first = _record_ids_seen(monkeypatch, _numbered_estimator(bucket_width=1), numbered_file, buffer_size=BUFFER)
    again = _record_ids_seen(monkeypatch, _numbered_estimator(bucket_width=1), numbered_file, buffer_size=BUFFER)
    other = _record_ids_seen(monkeypatch, _numbered_estimator(bucket_width=1, random_state=1), numbered_file,
                             buffer_size=BUFFER)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_shuffle_buffer_yields_each_item_once():
    rng = np.random.default_rng(0)
    out = list(shuffle_buffer(range(10_000), 100, rng))
    assert sorted(out) == list(range(10_000)) and out != list(range(10_000))


def test_records_split_across_ranks(tmp_path):
    one = tmp_path / "one.jsonl"
    write_records(({"in0": [k], "in1": [k]} for k in range(10)), one)
    ranks = [[r["in0"][0] for r, _, _ in rank_records([one], label=None, rank=r, world_size=2)] for r in (0, 1)]
    assert ranks == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]
    folder = tmp_path / "shards"
    folder.mkdir()
    for s in range(3):  # gzip shards, whole shards per rank
        with gzip.open(folder / f"part-{s}.jsonl.gz", "wt") as handle:
            handle.writelines(json.dumps({"in0": [10 * s + k], "in1": [1]}) + "\n" for k in range(2))
    shards = list_shards(folder)
    got = [[r["in0"][0] for r, _, _ in rank_records(shards, label=None, rank=r, world_size=2)] for r in (0, 1)]
    assert got == [[0, 1, 20, 21], [10, 11]]
    got = [[r["in0"][0] for r, _, _ in rank_records(shards, label=None, rank=r, world_size=4)] for r in range(4)]
    assert got == [[0, 20], [1, 21], [10], [11]]  # fewer shards than ranks: record by record


def test_streamed_fit_learns_like_in_memory(topic_files):
    train, val, (X, y) = topic_files
    params = dict(FAST, epochs=5, bucket_width=2, negative_sampling_rate=1)
    streamed = Object2VecClassifier(**params).fit(train, X_val=val)
    in_memory = Object2VecClassifier(**params).fit(X[:2000], y[:2000], X_val=X[2000:], y_val=y[2000:])
    assert streamed.n_records_ == 2000
    assert streamed.vocab_sizes_ == in_memory.vocab_sizes_
    assert streamed.max_seq_lens_ == in_memory.max_seq_lens_
    np.testing.assert_array_equal(streamed.classes_, in_memory.classes_)
    assert streamed.score(X[2000:], y[2000:]) > 0.9
    best = [min(h["validation:cross_entropy"] for h in model.history_) for model in (streamed, in_memory)]
    assert best[0] < best[1] + 0.05  # the bounded shuffle costs no accuracy here


def test_streamed_regressor_standardises_like_in_memory(tmp_path):
    X, y = make_score_pairs(300)
    write_records(X, tmp_path / "scores.jsonl", labels=y.tolist())
    streamed = Object2VecRegressor(**dict(FAST, epochs=1)).fit(str(tmp_path / "scores.jsonl"))
    in_memory = Object2VecRegressor(**dict(FAST, epochs=1)).fit(X, y)
    assert streamed.y_mean_ == pytest.approx(in_memory.y_mean_)
    assert streamed.y_scale_ == pytest.approx(in_memory.y_scale_)


def test_streamed_fit_chooses_each_tables_storage_as_in_memory(tmp_path):
    # A user followed by 100 rated items against one item (6,000 ids): each step reads over half the
    # first table, which "auto" keeps dense, as an in-memory fit of the same records does.
    rng = np.random.default_rng(0)
    X = [{"in0": [int(u)] + (100 + rng.choice(5_900, 100, replace=False)).tolist(), "in1": [int(rng.integers(5_900))]}
         for u in rng.integers(0, 100, 300)]
    X[0]["in1"] = [5_999]
    y = rng.normal(size=300)
    write_records(X, tmp_path / "context.jsonl", labels=y.tolist())
    params = dict(FAST, epochs=1, mini_batch_size=32)
    streamed = Object2VecRegressor(**params).fit(str(tmp_path / "context.jsonl"))
    assert streamed.net_.config["sparse_tables"] == [False, True]
    assert Object2VecRegressor(**params).fit(X, y).net_.config["sparse_tables"] == [False, True]


def test_streamed_errors_name_file_and_record(tmp_path, numbered_file):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"label": 1, "in0": [1], "in1": [2]}\n{"label": 0, "in0": [1, -3], "in1": [2]}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: field 'in0' holds the negative id -3"):
        Object2VecClassifier(**FAST).fit(bad)
    with pytest.raises(ValueError, match=r"numbered.jsonl, record 3000, field 'in0': token id 2999 is not less "
                                         r"than vocab_size=100"):
        Object2VecClassifier(**dict(FAST, enc0_vocab_size=100)).fit(numbered_file)
    with pytest.raises(ValueError, match="labels are read from each record's 'label' field"):
        Object2VecClassifier(**FAST).fit(numbered_file, [0, 1])
    with pytest.raises(ValueError, match="validation_fraction needs in-memory data"):
        Object2VecClassifier(**dict(FAST, validation_fraction=0.1)).fit(numbered_file)
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        Object2VecClassifier(**FAST).fit(tmp_path / "missing.jsonl")


def test_a_streamed_fit_leaves_the_garbage_collector_running(tmp_path, numbered_file):
    import gc

    # the records are read with the collector paused (half a streamed epoch went to it); it runs again after
    # a fit, and after a fit that fails in the middle of the file (past the pre-pass's first block)
    Object2VecClassifier(**dict(FAST, epochs=1)).fit(numbered_file)
    assert gc.isenabled()
    lines = [json.dumps({"label": k % 2, "in0": [k % 50], "in1": [k % 7]}) for k in range(6000)]
    lines[4999] = '{"label": 0, "in0": [1, true], "in1": [2]}'
    bad = tmp_path / "late_error.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"late_error.jsonl:5000: field 'in0' holds True"):
        Object2VecClassifier(**FAST).fit(bad)
    assert gc.isenabled()


def test_cli_train_streaming(tmp_path, topic_files, capsys):
    train, val, (X, y) = topic_files
    hp = tmp_path / "hp.json"
    hp.write_text(json.dumps({"epochs": 5, "enc0_network": "pooled_embedding", "enc_dim": 16,
                              "enc0_token_embedding_dim": 16, "mlp_dim": 32, "mlp_layers": 1,
                              "mini_batch_size": 64, "learning_rate": 0.01}))
    code = main(["train", "--streaming", "--buffer-size", "500", "--train", str(train), "--validation", str(val),
                 "--hyperparameters", str(hp), "--model-dir", str(tmp_path / "model"), "--random-state", "0",
                 "--quiet"])
    assert code == 0
    assert "epoch=5, validation accuracy <score>=" in capsys.readouterr().out
    model = load(tmp_path / "model")
    assert model.score(X[2000:], y[2000:]) > 0.8
