"""The ``skobject2vec`` command as a SageMaker user runs it."""

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from skobject2vec import from_sagemaker_hyperparameters, load
from skobject2vec.cli import main
from skobject2vec.data.jsonlines import read_records, write_records
from skobject2vec.datasets import make_score_pairs, make_topic_pairs

HP = {"enc0_network": "pooled_embedding", "enc_dim": "16", "enc0_max_seq_len": "10", "enc0_vocab_size": "100",
      "epochs": "4", "mini_batch_size": "64", "learning_rate": "0.01", "mlp_dim": "32", "mlp_layers": "1",
      "mlp_activation": "relu", "_kvstore": "device", "_num_gpus": "auto",
      "_tuning_objective_metric": "validation:mean_squared_error"}


@pytest.fixture(scope="module")
def channels(tmp_path_factory):
    folder = tmp_path_factory.mktemp("channels")
    X, y = make_topic_pairs(1300, seed=5)
    write_records(X[:1000], folder / "train.jsonl", labels=y[:1000].tolist())
    write_records(X[1000:1200], folder / "validation.jsonl.gz", labels=y[1000:1200].tolist())
    write_records(X[1200:], folder / "test.jsonl", labels=y[1200:].tolist())
    (folder / "hp.json").write_text(json.dumps(HP))
    return folder


def test_train_predict_embed_match_the_estimator(channels, tmp_path, capsys):
    model = tmp_path / "model"
    code = main(["train", "--train", str(channels / "train.jsonl"),
                 "--validation", str(channels / "validation.jsonl.gz"), "--test", str(channels / "test.jsonl"),
                 "--hyperparameters", str(channels / "hp.json"),
                 "--set", "epochs=5", "--model-dir", str(model), "--random-state", "3"])
    assert code == 0
    out = capsys.readouterr().out
    assert "#quality_metric: host=localhost, epoch=1, validation cross_entropy <loss>=" in out
    assert "validation accuracy <score>=" in out and "test accuracy <score>=" in out

    X, y = read_records(channels / "train.jsonl", label="classification")
    X_val, y_val = read_records(channels / "validation.jsonl.gz", label="classification")
    X_test, _ = read_records(channels / "test.jsonl", label="classification")
    estimator = from_sagemaker_hyperparameters(dict(HP, epochs="5"), random_state=3).fit(X, y, X_val=X_val, y_val=y_val)

    def predict(*extra):
        assert main(["predict", "--model-dir", str(model), "--input", str(channels / "test.jsonl"),
                     "--output", str(tmp_path / "scores.jsonl"), *extra]) == 0
        return np.array([json.loads(line)["scores"] for line in (tmp_path / "scores.jsonl").read_text().splitlines()])

    scores = predict()
    np.testing.assert_array_equal(scores, estimator.predict_proba(X_test))
    np.testing.assert_array_equal(scores, load(model).predict_proba(X_test))
    # streamed in chunks of 7: other batch shapes, float32 rounding only
    np.testing.assert_allclose(predict("--batch-size", "7"), scores, rtol=1e-5, atol=1e-7)

    singles = [{"in1": r["in1"]} for r in X_test[:5]] + [{"in0": r["in0"]} for r in X_test[:5]]
    write_records(singles, tmp_path / "singles.jsonl")
    assert main(["embed", "--model-dir", str(model), "--input", str(tmp_path / "singles.jsonl"),
                 "--output", str(tmp_path / "emb.jsonl.gz")]) == 0
    lines = gzip.open(tmp_path / "emb.jsonl.gz", "rt").read().splitlines()
    emb = np.array([json.loads(line)["embeddings"] for line in lines])
    np.testing.assert_allclose(emb[:5], estimator.transform(singles[:5]))
    np.testing.assert_allclose(emb[5:], estimator.transform(singles[5:]))


def test_regression_job(tmp_path, capsys):
    X, y = make_score_pairs(300)
    write_records(X, tmp_path / "train.jsonl", labels=y.tolist())
    code = main(["train", "--train", str(tmp_path / "train.jsonl"), "--test", str(tmp_path / "train.jsonl"),
                 "--set", "output_layer=mean_squared_error", "--set", "epochs=2", "--set", "enc_dim=8",
                 "--model-dir", str(tmp_path / "m"), "--quiet"])
    assert code == 0
    assert "test mean_squared_error <loss>=" in capsys.readouterr().out
    assert main(["predict", "--model-dir", str(tmp_path / "m"), "--input", str(tmp_path / "train.jsonl"),
                 "--output", str(tmp_path / "p.jsonl")]) == 0
    first = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])
    assert len(first["scores"]) == 1


@pytest.mark.parametrize("line, message", [
    ('{"label": 1, "in0": [1, 2], "in1": [3]', "train.jsonl:2: invalid JSON"),
    ('{"label": 1, "in0": [1, 2]}', "train.jsonl:2: missing key 'in1'"),
    ('{"label": 1, "in0": [1, 2.5], "in1": [3]}', "train.jsonl:2: field 'in0' holds 2.5"),
    ('{"label": 1, "in0": [1, -2], "in1": [3]}', "train.jsonl:2: field 'in0' holds the negative id -2"),
    ('{"label": 1, "in0": [[1, 2]], "in1": [3]}', "train.jsonl:2: field 'in0' holds a nested list"),
    ('{"label": "yes", "in0": [1], "in1": [3]}', "train.jsonl:2: field 'label' is 'yes'"),
    ('{"in0": [1], "in1": [3]}', "train.jsonl:2: missing key 'label'"),
])
def test_malformed_training_files_fail_with_one_line(tmp_path, capsys, line, message):
    (tmp_path / "train.jsonl").write_text('{"label": 0, "in0": [1], "in1": [2]}\n' + line + "\n")
    code = main(["train", "--train", str(tmp_path / "train.jsonl"), "--model-dir", str(tmp_path / "m")])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("skobject2vec train: error:")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("args, message", [
    (["--set", "epochs=1000"], "'epochs': 1000; expected int in [1, 100]"),
    (["--set", "feature_dim=3"], "Unknown hyperparameter 'feature_dim'"),
    (["--set", "epochs"], "--set expects name=value"),
    (["--set", "enc0_pretrained_embedding_file=glove.txt"], "file not found"),
    (["--hyperparameters", "missing.json"], "missing.json not found"),
])
def test_bad_hyperparameters(tmp_path, capsys, channels, args, message):
    code = main(["train", "--train", str(channels / "train.jsonl"), "--model-dir", str(tmp_path / "m"), *args])
    assert code == 1
    assert message in capsys.readouterr().err


def test_predict_errors(tmp_path, capsys, channels):
    assert main(["predict", "--model-dir", str(tmp_path / "nothing"), "--input", str(channels / "test.jsonl")]) == 1
    assert "is not a skobject2vec model folder" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_help_lists_every_option(tmp_path):
    out = subprocess.run([sys.executable, "-m", "skobject2vec", "train", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for option in ("--train", "--validation", "--test", "--auxiliary", "--hyperparameters", "--set", "--model-dir"):
        assert option in out.stdout
    assert "negative_sampling_rate" in out.stdout  # the hyperparameter table is in the help
    # Without --train, train reads SageMaker's environment (here: an empty /opt/ml stand-in) and says what is missing.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    bad = subprocess.run([sys.executable, "-m", "skobject2vec", "train"], capture_output=True, text=True,
                         env=dict(env, SAGEMAKER_BASE_DIR=str(tmp_path)))
    assert bad.returncode == 1 and "--train" in bad.stderr and "SM_CHANNEL_TRAIN" in bad.stderr
