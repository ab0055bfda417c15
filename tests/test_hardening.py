"""Broken files, careless CLI use, damaged artifacts and odd estimator input (issue 12, items 8-19)."""

import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from support import FAST

import skobject2vec
from skobject2vec import Object2VecClassifier, Object2VecRegressor
from skobject2vec.cli import main
from skobject2vec.data.jsonlines import RecordError, read_records
from skobject2vec.datasets import make_score_pairs, make_topic_pairs
from skobject2vec.io.artifact import _config_digest


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    X, y = make_topic_pairs(300, seed=5)
    clf = Object2VecClassifier(**FAST).fit(X, y)
    path = tmp_path_factory.mktemp("art") / "clf"
    clf.save(path)
    return clf, path


def _write_jsonl(path, records, labels=None):
    lines = [json.dumps({**({"label": int(label)} if labels is not None else {}), **r})
             for r, label in zip(records, labels if labels is not None else [None] * len(records))]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


# -------------------------------------------------------------------- item 8
@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_damaged_gzip_is_a_file_line_error_and_leaves_no_partial_output(fitted, tmp_path, capsys, damage):
    _, model = fitted
    X, _ = make_topic_pairs(30000, seed=1)
    data = gzip.compress(("\n".join(json.dumps(r) for r in X) + "\n").encode())
    data = data[: len(data) // 2] if damage == "truncated" else data[:-8] + b"\x00" * 8  # CRC/size trailer
    source = tmp_path / "in.jsonl.gz"
    source.write_bytes(data)
    out = tmp_path / "out.jsonl"
    assert main(["predict", "--model-dir", str(model), "--input", str(source), "--output", str(out),
                 "--batch-size", "1000"]) == 1
    err = capsys.readouterr().err
    assert f"{source}:" in err and "truncated or corrupt" in err and "Traceback" not in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    with pytest.raises(RecordError, match=rf"{source}:\d+: the file is truncated or corrupt"):
        read_records(source)


def test_failed_predict_keeps_the_earlier_output(fitted, tmp_path):
    _, model = fitted
    out = tmp_path / "out.jsonl"
    out.write_text("earlier\n")
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"in0": [1], "in1": [2]}, {"in0": [-1], "in1": [2]}])
    assert main(["predict", "--model-dir", str(model), "--input", str(bad), "--output", str(out)]) == 1
    assert out.read_text() == "earlier\n"


# -------------------------------------------------------------------- item 9
@pytest.mark.parametrize("label", ["1e300", str(2 ** 63), "1e20"])
def test_huge_class_labels_are_file_line_errors(tmp_path, label):
    path = tmp_path / "t.jsonl"
    path.write_text('{"label": 0, "in0": [1], "in1": [2]}\n{"label": ' + str(label) + ', "in0": [1], "in1": [2]}\n')
    with pytest.raises(RecordError, match=rf"{path}:2: field 'label'"):
        read_records(path, label="classification")


def test_huge_regression_labels_and_ids_are_file_line_errors(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"label": 1e300, "in0": [1], "in1": [2]}\n')
    with pytest.raises(RecordError, match=rf"{path}:1: field 'label'"):
        read_records(path, label="regression")
    path.write_text('{"in0": [1], "in1": [2]}\n{"in0": [' + str(2 ** 53) + '], "in1": [2]}\n')
    with pytest.raises(RecordError, match=rf"{path}:2: field 'in0'.*2\*\*53"):
        read_records(path)


def test_predict_errors_name_the_input_line_not_the_batch_record(fitted, tmp_path, capsys):
    _, model = fitted
    records = [{"in0": [1], "in1": [2]}] * 25 + [{"in0": [1], "in1": [2, True]}]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records[:25]) + '\n{"in0": [1], "in1": [2, true]}\n')
    assert main(["predict", "--model-dir", str(model), "--input", str(path), "--batch-size", "10"]) == 1
    err = capsys.readouterr().err
    assert f"{path}:26" in err, err


def test_broken_config_json_names_the_file(fitted, tmp_path):
    _, model = fitted
    copy = tmp_path / "m"
    shutil.copytree(model, copy)
    (copy / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=rf"{copy / 'config.json'}: not valid JSON"):
        skobject2vec.load(copy)


# -------------------------------------------------------------------- item 10
@pytest.mark.parametrize("name", ["dropout", "early_stopping_tolerance", "learning_rate", "weight_decay",
                                  "validation_fraction"])
def test_nan_hyperparameters_are_named_at_fit_time(name):
    X, y = make_topic_pairs(50)
    with pytest.raises(ValueError, match=rf"The '{name}' parameter of Object2VecClassifier must be .*Got nan"):
        Object2VecClassifier(**{**FAST, name: float("nan"), "epochs": 1}).fit(X, y)


def test_nan_hyperparameter_in_the_cli(tmp_path, capsys):
    X, y = make_topic_pairs(50)
    train = _write_jsonl(tmp_path / "train.jsonl", X, y)
    assert main(["train", "--train", str(train), "--model-dir", str(tmp_path / "m"), "--set", "dropout=nan",
                 "--quiet"]) == 1
    assert "'dropout'" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


# -------------------------------------------------------------------- item 11
@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd", "sub/emb.txt", "..", "emb txt"])
def test_auxiliary_file_names_cannot_leave_the_channel(tmp_path, capsys, name):
    aux = tmp_path / "aux"
    aux.mkdir()
    X, y = make_topic_pairs(50)
    train = _write_jsonl(tmp_path / "train.jsonl", X, y)
    assert main(["train", "--train", str(train), "--model-dir", str(tmp_path / "m"), "--auxiliary", str(aux),
                 "--set", f"enc0_pretrained_embedding_file={name}", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "[A-Za-z0-9._]" in err and "root:" not in err


def test_auxiliary_symlink_out_of_the_channel_is_refused(tmp_path, capsys):
    aux = tmp_path / "aux"
    aux.mkdir()
    (aux / "emb.txt").symlink_to("/etc/passwd")
    X, y = make_topic_pairs(50)
    train = _write_jsonl(tmp_path / "train.jsonl", X, y)
    assert main(["train", "--train", str(train), "--model-dir", str(tmp_path / "m"), "--auxiliary", str(aux),
                 "--set", "enc0_pretrained_embedding_file=emb.txt", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "not inside the auxiliary channel" in err and "root:" not in err


# -------------------------------------------------------------------- item 12
def test_bad_test_channel_is_found_before_training(tmp_path, capsys):
    X, y = make_topic_pairs(50)
    train = _write_jsonl(tmp_path / "train.jsonl", X, y)
    test = tmp_path / "test.jsonl"
    test.write_text('{"label": 1, "in0": [1]}\n')
    start = time.perf_counter()
    assert main(["train", "--train", str(train), "--test", str(test), "--model-dir", str(tmp_path / "m"),
                 "--set", "epochs=1", "--quiet"]) == 1
    assert f"{test}:1: missing key 'in1'" in capsys.readouterr().err
    assert time.perf_counter() - start < 30


@pytest.mark.slow
def test_test_metric_failure_keeps_the_saved_model(tmp_path, capsys):
    X, y = make_topic_pairs(60)
    train = _write_jsonl(tmp_path / "train.jsonl", X, y)
    test = _write_jsonl(tmp_path / "test.jsonl", X[:5], [7] * 5)  # a class never trained on
    # a small network: the CLI trains SageMaker's defaults, 4096 wide
    assert main(["train", "--train", str(train), "--test", str(test), "--model-dir", str(tmp_path / "m"),
                 "--set", "epochs=1", "--set", "enc_dim=8", "--quiet"]) == 1
    assert "not one of the training classes" in capsys.readouterr().err
    skobject2vec.load(tmp_path / "m")


# -------------------------------------------------------------------- items 13, 14, 15
def test_save_replaces_an_artifact_atomically_and_cleans_killed_saves(fitted, tmp_path):
    clf, _ = fitted
    target = tmp_path / "model"
    clf.save(target)
    # leftovers of killed saves (a pid that cannot be alive)
    (tmp_path / ".model.staging-999999999-abc").mkdir()
    (tmp_path / ".model.staging-999999999-abc" / "model.safetensors").write_bytes(b"x" * 1000)
    (tmp_path / ".other.staging-999999999-abc").mkdir()  # another artifact's: not ours to remove
    clf.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.staging-999999999-abc", "model"]
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors"]
    skobject2vec.load(target)


def test_old_model_left_by_a_kill_between_renames_is_restored(fitted, tmp_path):
    clf, _ = fitted
    target = tmp_path / "model"
    clf.save(target)
    os.replace(target, tmp_path / ".model.old-999999999")  # what a kill in the fallback swap leaves
    clf.save(target)
    assert not (tmp_path / ".model.old-999999999").exists()
    skobject2vec.load(target)


_KILL_SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
from support import FAST
from skobject2vec.datasets import make_topic_pairs
from skobject2vec import Object2VecClassifier
X, y = make_topic_pairs(200)
clf = Object2VecClassifier(**{{**FAST, "epochs": 1, "enc0_vocab_size": 200000, "enc1_vocab_size": 200000}}).fit(X, y)
print("ready", flush=True)
while True:
    clf.save({target!r})
"""


@pytest.mark.slow
def test_killed_saves_never_lose_the_model(fitted, tmp_path):
    clf, _ = fitted
    target = tmp_path / "model"
    clf.save(target)
    script = _KILL_SCRIPT.format(tests=os.path.dirname(__file__), target=str(target))
    rng = np.random.default_rng(0)
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(float(rng.uniform(0.05, 0.4)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        skobject2vec.load(target)  # always a complete model at its path
    clf.save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_save_refuses_a_foreign_folder_and_never_deletes_other_files(fitted, tmp_path):
    clf, _ = fitted
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "config.json").write_text('{"name": "my app"}')
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a skobject2vec artifact"):
        clf.save(folder)
    assert (folder / "config.json").read_text() == '{"name": "my app"}'
    clf.save(folder, overwrite=True)
    assert (folder / "notes.txt").read_text() == "keep me"
    skobject2vec.load(folder)
    # an artifact folder with an extra file: refused too, and the file survives an overwrite
    with pytest.raises(FileExistsError, match="other files"):
        clf.save(folder)


def test_artifacts_follow_the_umask(fitted, tmp_path):
    clf, _ = fitted
    old = os.umask(0o022)
    try:
        clf.save(tmp_path / "m")
    finally:
        os.umask(old)
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o755
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / "m" / name).stat().st_mode & 0o777 == 0o644


# -------------------------------------------------------------------- item 16
def _resign(path, config):
    """Recompute the digests, as a deliberate editor would: the checks behind them must still refuse."""
    config["weights_sha256"] = hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()
    config["config_sha256"] = _config_digest(config)
    (path / "config.json").write_text(json.dumps(config))


def _edit(path, *keys, value, resign=True):
    config = json.loads((path / "config.json").read_text())
    node = config
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    if resign:
        _resign(path, config)
    else:
        (path / "config.json").write_text(json.dumps(config))


def _weights(path, change):
    state = load_file(str(path / "model.safetensors"))
    save_file(change(state), str(path / "model.safetensors"))
    _resign(path, json.loads((path / "config.json").read_text()))


TAMPERED = [
    ("dtype-getattr", lambda p: _edit(p, "dtype", value="__class__"), "config.json: dtype"),
    ("float16", lambda p: _edit(p, "dtype", value="float16"), "config.json: dtype"),
    ("huge-vocab", lambda p: _edit(p, "network", "vocab_sizes", value=[20_000_000, 20_000_000]),
     "network.vocab_sizes"),
    ("both-vocab", lambda p: (_edit(p, "network", "vocab_sizes", value=[20_000_000, 20_000_000]),
                              _edit(p, "fitted", "vocab_sizes", value=[20_000_000, 20_000_000])),
     "model.safetensors: token_embedding0.weight: shape"),
    ("max-seq-0", lambda p: _edit(p, "fitted", "max_seq_lens", value=[0, 5]), "fitted.max_seq_lens[0]"),
    ("3-classes", lambda p: _edit(p, "fitted", "classes", value={"dtype": "<i8", "values": [0, 1, 2]}),
     "network.n_outputs"),
    ("estimator", lambda p: _edit(p, "estimator", value="os.system"), "config.json: estimator"),
    ("mlp", lambda p: _edit(p, "network", "mlp_dim", value=64), "shape"),
    ("network-junk", lambda p: _edit(p, "network", "networks", value=["nope", "nope"]), "config.json: network"),
    ("classes-dtype", lambda p: _edit(p, "fitted", "classes", value={"dtype": "V100000000", "values": [0, 1]}),
     "fitted.classes"),
    ("unknown-param", lambda p: _edit(p, "params", "evil", value=1), "params"),
    ("int8", lambda p: _weights(p, lambda s: {k: v.to(torch.int8) for k, v in s.items()}), "dtype"),
    ("bool", lambda p: _weights(p, lambda s: {k: v.to(torch.bool) for k, v in s.items()}), "dtype"),
    ("nan", lambda p: _weights(p, lambda s: {k: v.fill_(float("nan")) for k, v in s.items()}), "NaN"),
    ("inf", lambda p: _weights(p, lambda s: {k: v.fill_(float("inf")) for k, v in s.items()}), "NaN or infinite"),
    ("missing-tensor", lambda p: _weights(p, lambda s: dict(list(s.items())[1:])), "tensor missing"),
    ("extra-tensor", lambda p: _weights(p, lambda s: {**s, "evil": torch.zeros(2)}), "unexpected tensor"),
    ("truncated", lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:3000]),
     "model.safetensors: does not match the digest"),
    ("empty-weights", lambda p: (p / "model.safetensors").write_bytes(b""), "model.safetensors"),
    ("config-list", lambda p: (p / "config.json").write_text("[1, 2]"), "config.json"),
]


@pytest.mark.parametrize("name,tamper,fragment", TAMPERED, ids=[t[0] for t in TAMPERED])
def test_tampered_artifacts_never_load(fitted, tmp_path, name, tamper, fragment):
    _, model = fitted
    copy = tmp_path / "m"
    shutil.copytree(model, copy)
    tamper(copy)
    with pytest.raises(ValueError, match="refusing to load|not valid JSON|expected a JSON object|not a skobject2vec") \
            as info:
        skobject2vec.load(copy)
    assert fragment in str(info.value) and str(copy) in str(info.value), str(info.value)


def test_untampered_artifact_predicts_as_saved(fitted):
    clf, model = fitted
    X, _ = make_topic_pairs(20, seed=9)
    np.testing.assert_allclose(skobject2vec.load(model).predict_proba(X), clf.predict_proba(X), rtol=1e-6)


# -------------------------------------------------------------------- items 18, 19
@pytest.mark.parametrize("X,fragment", [
    (np.array([[1, 2 ** 63 + 5]], dtype=np.uint64), "2**53"),
    (np.array([[1.0, 1e20]]), "2**53"),
    (np.array([[True, False], [False, True]]), "boolean"),
])
def test_out_of_range_or_boolean_arrays_are_value_errors(X, fragment):
    with pytest.raises(ValueError, match=fragment.replace("*", r"\*")):
        Object2VecClassifier(**FAST).fit(np.vstack([X, X]), [0, 1] * len(X))


@pytest.mark.parametrize("record,fragment", [
    ({"in0": [-(2 ** 63) - 1], "in1": [1]}, ">= 0"),
    ({"in0": [1, True], "in1": [1]}, "booleans"),
    ({"in0": {1, 2}, "in1": [1]}, "set has no order"),
    ({"in0": [1], "in1": [2 ** 64]}, "2**53"),
])
def test_odd_record_ids_are_value_errors_naming_the_record(fitted, record, fragment):
    clf, _ = fitted
    X = [{"in0": [1], "in1": [2]}, record]
    with pytest.raises(ValueError, match=r"record 1, field 'in[01]'") as info:
        clf.predict(X)
    assert fragment in str(info.value)
    with pytest.raises(ValueError, match=r"record 1"):
        Object2VecClassifier(**FAST).fit(X, [0, 1])


@pytest.mark.parametrize("value", [1e200, -1e200, 1e151])
def test_huge_regression_targets_are_refused(value):
    X, y = make_score_pairs(40)
    y = np.array(y)
    y[3] = value
    with pytest.raises(ValueError, match=r"y\[3\]"):
        Object2VecRegressor(**{**FAST, "epochs": 1}).fit(X, y)


# -------------------------------------------------------------------- item 17
@pytest.mark.parametrize("pattern", [r"(\w+)+$", r"(a*)*", r"(?:ab|c+){2,}", r"(a|a)+$", r"(a|aa)*b",
                                     r"\w*\w*\w*x", r"(\w)\1", r"(?=a)\w+"])
def test_pipeline_artifact_with_a_backtracking_pattern_is_refused(tmp_path, pattern):
    from sklearn.pipeline import make_pipeline

    from skobject2vec.text import TextPairTokenizer

    texts = [{"in0": "a b c", "in1": "b c"}, {"in0": "c d", "in1": "a"}] * 20
    pipe = make_pipeline(TextPairTokenizer(), Object2VecClassifier(**{**FAST, "epochs": 1})).fit(texts, [0, 1] * 20)
    skobject2vec.save(pipe, tmp_path / "p")
    skobject2vec.load(tmp_path / "p")
    _edit(tmp_path / "p", "pipeline", "steps", 0, "state", "params", "token_pattern", value=pattern)
    with pytest.raises(ValueError, match="refusing to load it from an artifact"):
        skobject2vec.load(tmp_path / "p")


@pytest.mark.parametrize("pattern", [r"\w+|[^\w\s]", r"[a-z]+", r"\d{1,3}|\w+", r"(?:\w+|\d)", r"\b\w\w+\b"])
def test_safe_token_patterns_pass_the_artifact_check(pattern):
    from skobject2vec.io.artifact import check_token_pattern

    check_token_pattern(pattern, "config.json")  # the default and scikit-learn-like patterns load


# -------------------------------------------------------------------- item 22
def test_serve_without_the_extra_says_what_to_install(monkeypatch, capsys, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_starlette(name, *args, **kwargs):
        if name.startswith("starlette"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    for module in [m for m in sys.modules if m.startswith("skobject2vec.serving")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setattr(builtins, "__import__", no_starlette)
    assert main(["serve", "--model-dir", str(tmp_path)]) == 1
    assert 'pip install "skobject2vec[serve]"' in capsys.readouterr().err


def test_packaging_metadata():
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and (root / "LICENSE").is_file()
    assert (root / "skobject2vec" / "py.typed").is_file() and "version" in project["dynamic"]
    serve = " ".join(project["optional-dependencies"]["serve"])
    assert "starlette" in serve and "fastapi" not in serve
    # fused Adam on CPU needs 2.4+; the declared bound is the oldest torch that CI tests (make test-lowest)
    torch_floor = [tuple(int(p) for p in d.split(">=")[1].split(".")[:2])
                   for d in project["dependencies"] if d.startswith("torch>=")]
    assert torch_floor and torch_floor[0] >= (2, 4)
    assert "dask" in project["optional-dependencies"]


@pytest.mark.parametrize("device", ["mps", "xpu", "cuda:3"])
def test_an_artifact_trained_on_an_absent_accelerator_loads_on_the_cpu(fitted, tmp_path, device):
    clf, _ = fitted
    clf.save(tmp_path / "m")
    _edit(tmp_path / "m", "params", "device", value=device)
    restored = skobject2vec.load(tmp_path / "m")
    assert next(restored.net_.parameters()).device.type == "cpu"
    X, _ = make_topic_pairs(20, seed=9)
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    with pytest.raises(ValueError, match="not available on this machine"):
        restored.set_params(device=device).fit(*make_topic_pairs(50))


def test_string_labels_of_any_length_save_and_load(tmp_path):
    X, y = make_topic_pairs(120)
    labels = np.array(["a" * 300, "b" * 5000])[y % 2]
    clf = Object2VecClassifier(**dict(FAST, epochs=1)).fit(X, labels)
    clf.save(tmp_path / "m")
    restored = skobject2vec.load(tmp_path / "m")
    assert restored.classes_.tolist() == clf.classes_.tolist() and restored.classes_.dtype == clf.classes_.dtype
    np.testing.assert_array_equal(restored.predict(X), clf.predict(X))
    _edit(tmp_path / "m", "fitted", "classes", "dtype", value="<U99999999")  # wider than any label: refused
    with pytest.raises(ValueError, match="fitted.classes"):
        skobject2vec.load(tmp_path / "m")


@pytest.mark.parametrize("edit", [
    ("fitted", "y_mean"), ("params", "pooling"), ("network", "comparator"), ("network", "mlp_activation"),
    ("fitted", "max_seq_lens"), ("fitted", "classes", "values")])
def test_any_edit_of_the_config_is_refused(fitted, tmp_path, edit):
    clf, _ = fitted
    clf.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    node = config
    for key in edit[:-1]:
        node = node.setdefault(key, {})
    old = node.get(edit[-1])
    if isinstance(old, list):
        node[edit[-1]] = [old[0] + 1] + old[1:] if isinstance(old[0], int) and edit[-1] != "values" \
            else list(reversed(old))
    else:
        node[edit[-1]] = "changed"
    assert node[edit[-1]] != old
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json: does not match its digest"):
        skobject2vec.load(tmp_path / "m")


def test_flipped_bits_in_the_weights_are_refused(fitted, tmp_path):
    clf, _ = fitted
    clf.save(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    for position in np.random.default_rng(0).integers(len(data) // 2, len(data), 10):
        flipped = bytearray(data)
        flipped[position] ^= 1 << int(position % 8)
        weights.write_bytes(bytes(flipped))
        with pytest.raises(ValueError, match="does not match the digest"):
            skobject2vec.load(tmp_path / "m")


def test_loads_racing_saves_never_mix_two_models(tmp_path):
    # two different models saved in turn into one folder while another thread loads it
    import threading

    X, y = make_topic_pairs(100)
    models = [Object2VecClassifier(**dict(FAST, epochs=1, random_state=s)).fit(X, y) for s in (0, 1)]
    expected = [m.predict_proba(X[:20]) for m in models]
    models[0].save(tmp_path / "m")
    stop = threading.Event()

    def saves():
        i = 0
        while not stop.is_set():
            i += 1
            models[i % 2].save(tmp_path / "m")

    writer = threading.Thread(target=saves)
    writer.start()
    try:
        for _ in range(40):
            got = skobject2vec.load(tmp_path / "m").predict_proba(X[:20])
            assert any(np.array_equal(got, e) for e in expected)
    finally:
        stop.set()
        writer.join()


def test_a_folder_name_of_240_characters_saves_and_loads(fitted, tmp_path):
    clf, _ = fitted
    path = tmp_path / ("m" * 240)
    clf.save(path)
    clf.save(path)  # the replacing save too
    assert skobject2vec.load(path).classes_.tolist() == clf.classes_.tolist()


def test_train_checks_the_model_folder_before_training(tmp_path, capsys):
    data = tmp_path / "train.jsonl"
    X, y = make_topic_pairs(60)
    _write_jsonl(data, X, y)
    (tmp_path / "a_file").write_text("x")
    started = time.perf_counter()
    code = main(["train", "--train", str(data), "--model-dir", str(tmp_path / "a_file"), "--set", "epochs=100"])
    assert code == 1 and time.perf_counter() - started < 30  # refused before 100 epochs of training
    err = capsys.readouterr().err
    assert "a_file exists and is not a folder" in err and "Traceback" not in err
    blocked = tmp_path / "blocked"
    blocked.write_text("x")
    assert main(["train", "--train", str(data), "--model-dir", str(blocked / "model")]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "blocked" in err and "Traceback" not in err


def test_predict_output_symlinks_are_written_through_and_file_errors_are_one_line(fitted, tmp_path, capsys):
    _, model = fitted
    X, _ = make_topic_pairs(20, seed=9)
    source = _write_jsonl(tmp_path / "in.jsonl", X)
    target = tmp_path / "real.jsonl"
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    assert main(["predict", "--model-dir", str(model), "--input", str(source), "--output", str(link)]) == 0
    assert link.is_symlink() and len(target.read_text().splitlines()) == 20  # the link kept, its target written
    (tmp_path / "a_file").write_text("x")
    for args in (["--input", str(source), "--output", str(tmp_path)],  # a folder as the output
                 ["--input", str(source), "--output", str(tmp_path / "a_file" / "out.jsonl")],  # under a file
                 ["--input", str(tmp_path), "--output", str(tmp_path / "o.jsonl")],  # a folder as the input
                 ["--input", str(source), "--output", str(tmp_path / ("n" * 300 + ".jsonl"))]):  # a long name
        capsys.readouterr()
        assert main(["predict", "--model-dir", str(model), *args]) == 1, args
        err = capsys.readouterr().err
        assert err.startswith("skobject2vec predict: error:") and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err


def test_train_id_errors_name_the_file_and_line(tmp_path, capsys):
    X, y = make_topic_pairs(40)
    X[7] = {"in0": [1, 5000], "in1": [2]}  # an id over the vocabulary given: found by fit, not by the reader
    lines = [json.dumps({"label": int(label), **r}) for r, label in zip(X, y)]
    lines.insert(1, "")  # a blank line: record 7 sits on line 9
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "hp.json").write_text(json.dumps({"enc0_vocab_size": "1000"}))
    assert main(["train", "--train", str(tmp_path / "train.jsonl"), "--model-dir", str(tmp_path / "m"),
                 "--hyperparameters", str(tmp_path / "hp.json")]) == 1
    err = capsys.readouterr().err
    assert "train.jsonl:9, field 'in0': token id 5000" in err and "Traceback" not in err, err
