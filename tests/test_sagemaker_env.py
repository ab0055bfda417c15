"""Issue 14: the SageMaker training-container contract, live metric lines and CLI conventions."""

import json
import os
import subprocess
import sys
import tarfile
import time

import pytest

from skobject2vec import __version__, load
from skobject2vec.cli import main
from skobject2vec.data.jsonlines import write_records as _write_records
from skobject2vec.datasets import make_topic_pairs


def write_records(X, path, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    return _write_records(X, path, **kwargs)
from skobject2vec.hyperparameters import parse_sagemaker_hyperparameters  # noqa: E402

HP = {"enc0_network": "pooled_embedding", "enc_dim": "8", "enc0_max_seq_len": "10", "enc0_vocab_size": "100",
      "epochs": "3", "mini_batch_size": "64", "learning_rate": "0.01", "mlp_dim": "16", "mlp_layers": "1"}


@pytest.fixture
def sagemaker(tmp_path, monkeypatch):
    """An /opt/ml tree in a temporary folder, as the training toolkit lays it out."""
    base = tmp_path / "opt_ml"
    X, y = make_topic_pairs(300, seed=1)
    write_records(X[:200], base / "input/data/train/train.jsonl", labels=y[:200].tolist())
    write_records(X[200:], base / "input/data/validation/val.jsonl", labels=y[200:].tolist())
    (base / "input/config").mkdir(parents=True)
    (base / "input/config/hyperparameters.json").write_text(json.dumps(HP))
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    for name in ("SM_HPS", "SM_MODEL_DIR", "SM_OUTPUT_DIR", "SM_CHANNEL_TRAIN", "SM_CHANNEL_VALIDATION"):
        monkeypatch.delenv(name, raising=False)
    return base


def test_train_reads_opt_ml_layout(sagemaker, capsys):
    assert main(["train"]) == 0
    out = capsys.readouterr().out
    assert "epoch=3, validation accuracy <score>=" in out
    model = load(sagemaker / "model")
    assert model.enc_dim == 8 and model.n_iter_ <= 3
    assert not (sagemaker / "output/failure").exists()


def test_train_reads_sm_variables(sagemaker, tmp_path, monkeypatch, capsys):
    X, y = make_topic_pairs(100, seed=2)
    write_records(X, tmp_path / "elsewhere/train/part.jsonl", labels=y.tolist())
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "elsewhere/train"))
    monkeypatch.setenv("SM_CHANNEL_VALIDATION", str(tmp_path / "missing"))  # absent channel: ignored
    monkeypatch.setenv("SM_HPS", json.dumps(dict(HP, epochs=2, enc_dim=4)))  # typed values, as the toolkit gives
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "sm_model"))
    assert main(["train"]) == 0
    out = capsys.readouterr().out
    assert "epoch=2, train cross_entropy" in out and "validation" not in out
    model = load(tmp_path / "sm_model")
    assert model.enc_dim == 4 and model.n_iter_ == 2


def test_incremental_training_from_model_channel(sagemaker, tmp_path, capsys):
    assert main(["train"]) == 0
    first = load(sagemaker / "model")
    channel = sagemaker / "input/data/model"
    channel.mkdir(parents=True)
    with tarfile.open(channel / "model.tar.gz", "w:gz") as tar:
        for f in (sagemaker / "model").iterdir():
            tar.add(f, arcname=f.name)
    assert main(["train"]) == 0
    second = load(sagemaker / "model")
    assert second.n_iter_ > first.n_iter_  # continued: the previous epochs come first in history_
    assert second.loss_curve_[:first.n_iter_] == first.loss_curve_
    assert second.loss_curve_[first.n_iter_] < first.loss_curve_[0]


def test_failure_file(sagemaker, monkeypatch, capsys):
    monkeypatch.setenv("SM_HPS", json.dumps(dict(HP, epoch="3")))
    assert main(["train"]) == 1
    failure = (sagemaker / "output/failure").read_text()
    assert "Unknown hyperparameter 'epoch'" in failure and "did you mean 'epochs'" in failure
    out = sagemaker.parent / "out"
    monkeypatch.setenv("SM_OUTPUT_DIR", str(out))
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(sagemaker / "nowhere"))
    assert main(["train"]) == 1
    assert "no train channel" in (out / "failure").read_text()
    assert "no train channel" in capsys.readouterr().err


def test_no_opt_ml_created_outside_a_sagemaker_layout(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "opt_ml"))
    monkeypatch.delenv("SM_OUTPUT_DIR", raising=False)
    monkeypatch.delenv("SM_CHANNEL_TRAIN", raising=False)
    assert main(["train"]) == 1
    assert not (tmp_path / "opt_ml").exists()
    assert "SM_CHANNEL_TRAIN" in capsys.readouterr().err


def test_no_failure_file_outside_sagemaker_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    assert main(["train", "--train", str(tmp_path / "none.jsonl"), "--model-dir", str(tmp_path / "m")]) == 1
    assert not (tmp_path / "output").exists()


@pytest.mark.slow
def test_metric_lines_appear_as_each_epoch_ends(tmp_path):
    """A scraper reading the log as it grows sees epoch 1's line before epoch 2 has ended."""
    X, y = make_topic_pairs(400, seed=1)
    write_records(X, tmp_path / "train.jsonl", labels=y.tolist())
    code = (
        "import sys, time\n"
        "import skobject2vec.training as t\n"
        "real = t.training_batches\n"
        "def slow(*a, **k):\n"
        "    time.sleep(1.0)\n"  # each epoch starts a second late
        "    return real(*a, **k)\n"
        "t.training_batches = slow\n"
        "from skobject2vec.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    hp = {k: v for k, v in HP.items()}
    hp["epochs"] = "3"
    (tmp_path / "hp.json").write_text(json.dumps(hp))
    proc = subprocess.Popen([sys.executable, "-c", code, "train", "--train", str(tmp_path / "train.jsonl"),
                             "--hyperparameters", str(tmp_path / "hp.json"), "--model-dir", str(tmp_path / "m")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    seen = []
    for line in proc.stdout:
        if line.startswith("#quality_metric"):
            seen.append((line, time.monotonic(), (tmp_path / "m").exists()))
    proc.wait()
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    epochs = [int(line.split("epoch=")[1].split(",")[0]) for line, _, _ in seen]
    assert epochs == [1, 2, 3]
    assert seen[2][1] - seen[0][1] > 1.5  # epoch 1's line arrived while epochs 2 and 3 were still to run
    # epochs 1 and 2 arrive before the model is saved (the last line races the save by milliseconds)
    assert not any(saved for _, _, saved in seen[:-1]), seen
    # non-TTY: one summary line per epoch on stdout, no carriage-return progress bars on stderr
    assert "\r" not in err


def test_metric_lines_printed_by_epoch_callback_before_fit_returns(tmp_path, capsys, monkeypatch):
    """In process: the n-th metric line is printed while epoch n+1 has not started."""
    import skobject2vec.training as training

    X, y = make_topic_pairs(200, seed=1)
    write_records(X, tmp_path / "train.jsonl", labels=y.tolist())
    (tmp_path / "hp.json").write_text(json.dumps(HP))
    real = training.training_batches
    printed_before_epoch = []

    def spy(*args, **kwargs):
        printed_before_epoch.append(capsys.readouterr().out.count("#quality_metric"))
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "training_batches", spy)
    assert main(["train", "--train", str(tmp_path / "train.jsonl"), "--hyperparameters", str(tmp_path / "hp.json"),
                 "--model-dir", str(tmp_path / "m")]) == 0
    assert printed_before_epoch == [0, 1, 1]  # epoch 1's line printed before epoch 2 starts, etc.


def test_non_tty_lines_and_explicit_verbose(tmp_path, capsys, monkeypatch):
    import skobject2vec.estimators as estimators

    X, y = make_topic_pairs(100, seed=1)
    write_records(X, tmp_path / "train.jsonl", labels=y.tolist())
    (tmp_path / "hp.json").write_text(json.dumps(HP))
    args = ["train", "--train", str(tmp_path / "train.jsonl"), "--hyperparameters", str(tmp_path / "hp.json"),
            "--model-dir", str(tmp_path / "m")]
    seen = {}
    real_fit = estimators._Object2VecBase.fit

    def fit(self, *a, **k):
        seen["verbose"] = self.verbose
        return real_fit(self, *a, **k)

    monkeypatch.setattr(estimators._Object2VecBase, "fit", fit)
    assert main(args) == 0  # capsys: not a TTY
    captured = capsys.readouterr()
    assert seen["verbose"] == 0 and "\r" not in captured.err
    assert [line.split()[0:2] for line in captured.out.splitlines() if line.startswith("epoch ")] == [
        ["epoch", "1/3"], ["epoch", "2/3"], ["epoch", "3/3"]]
    assert main(args + ["--set", "verbose=1"]) == 0
    assert seen["verbose"] == 1  # kept, not turned into 2
    capsys.readouterr()


def test_version_and_did_you_mean(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"skobject2vec {__version__}"
    with pytest.raises(ValueError) as err:
        parse_sagemaker_hyperparameters({"epoch": "3"})
    message = str(err.value)
    assert "did you mean 'epochs'?" in message and "enc0_network" not in message
    with pytest.raises(ValueError, match="train --help"):
        parse_sagemaker_hyperparameters({"zzzz": "3"})


def test_messages_without_numpy_reprs_and_stdout_name(tmp_path, capsys):
    X, y = make_topic_pairs(100, seed=1)
    write_records(X, tmp_path / "train.jsonl", labels=y.tolist())
    write_records(X[:3], tmp_path / "test.jsonl", labels=[0, 1, 5])
    (tmp_path / "hp.json").write_text(json.dumps(dict(HP, epochs="1")))
    assert main(["train", "--train", str(tmp_path / "train.jsonl"), "--test", str(tmp_path / "test.jsonl"),
                 "--hyperparameters", str(tmp_path / "hp.json"), "--model-dir", str(tmp_path / "m"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "label 5 is not one of" in err and "np." not in err
    assert main(["train", "--train", str(tmp_path / "train.jsonl"), "--hyperparameters", str(tmp_path / "hp.json"),
                 "--model-dir", str(tmp_path / "m"), "--quiet"]) == 0
    capsys.readouterr()
    write_records([{"in0": [1]}], tmp_path / "one.jsonl")
    assert main(["embed", "--model-dir", str(tmp_path / "m"), "--input", str(tmp_path / "one.jsonl")]) == 0
    captured = capsys.readouterr()
    assert "1 records written to stdout" in captured.err and "embeddings" in captured.out


@pytest.mark.parametrize("argv, expected", [
    (["train"], "train"),
    (["train", "--set", "epochs=2"], "train --set epochs=2"),
    (["serve"], "serve --host 0.0.0.0 --workers 1"),
    ([], "serve --host 0.0.0.0 --workers 1"),
    (["predict", "--input", "x"], "predict --input x"),
])
def test_docker_entrypoint_dispatches_train_and_serve(tmp_path, argv, expected):
    """`docker run IMAGE train` must run `skobject2vec train`, not `serve ... train`."""
    from pathlib import Path

    dockerfile = (Path(__file__).parents[1] / "Dockerfile").read_text()
    entrypoint = json.loads(next(line for line in dockerfile.splitlines() if line.startswith("ENTRYPOINT"))
                            .split(None, 1)[1])
    assert entrypoint[:2] == ["/bin/sh", "-c"]
    fake = tmp_path / "skobject2vec"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")
    env.pop("SAGEMAKER_MODEL_SERVER_WORKERS", None)
    out = subprocess.run(entrypoint + argv, capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == expected
    assert 'torch==' in dockerfile  # pinned


def test_a_broken_model_archive_names_the_channel_and_the_archive(sagemaker, capsys):
    channel = sagemaker / "input/data/model"
    channel.mkdir(parents=True)
    (channel / "model.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    assert main(["train"]) == 1
    failure = (sagemaker / "output/failure").read_text()
    assert "model channel" in failure and "model.tar.gz cannot be extracted" in failure
    assert "Traceback" not in capsys.readouterr().err
