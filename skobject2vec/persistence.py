"""Safe model artifact: ``model.safetensors`` (weights) + ``config.json`` (everything else).

Loading never unpickles anything, so an artifact from an untrusted source cannot
run code. Saving is atomic: the artifact is written into a temporary sibling
folder and renamed into place, so a failed save leaves no half-written model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

FORMAT = "skobject2vec"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

__all__ = ["save", "load", "CONFIG_FILE", "WEIGHTS_FILE"]


def _json_param(name, value):
    if name == "random_state" and not (value is None or isinstance(value, (int, np.integer))):
        return None  # a RandomState instance cannot be stored; the fit is done anyway
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _encode_classes(classes: np.ndarray) -> dict:
    kind = classes.dtype.kind
    if kind in "iub":
        return {"dtype": classes.dtype.str, "values": classes.tolist()}
    if kind == "f":
        return {"dtype": classes.dtype.str, "values": [float(v) for v in classes]}
    if kind == "U":
        return {"dtype": classes.dtype.str, "values": classes.tolist()}
    values = classes.tolist()
    try:
        json.dumps(values)
    except TypeError as exc:
        raise ValueError(f"classes_ of type {type(values[0]).__name__} cannot be stored in a safe artifact; "
                         f"use string or numeric labels (or pickle/joblib).") from exc
    return {"dtype": "object", "values": values}


def _decode_classes(spec: dict) -> np.ndarray:
    if spec["dtype"] == "object":
        out = np.empty(len(spec["values"]), dtype=object)
        out[:] = spec["values"]
        return out
    return np.asarray(spec["values"], dtype=np.dtype(spec["dtype"]))


def save(estimator, path, *, extras: dict | None = None) -> Path:
    """Write a fitted estimator to the folder ``path`` (replacing an earlier artifact there).

    ``estimator`` may also be a fitted Pipeline of :class:`TextPairTokenizer` steps
    ending in an Object2Vec estimator: the steps are stored as JSON and
    :func:`load` returns the Pipeline. ``extras`` is stored in the config (JSON).
    """
    from sklearn.utils.validation import check_is_fitted
    from safetensors.torch import save_file

    pipeline, estimator = _pipeline_spec(estimator)
    check_is_fitted(estimator, "net_")
    path = Path(path)
    net = estimator.net_
    fitted = {
        "vocab_sizes": list(estimator.vocab_sizes_),
        "max_seq_lens": list(estimator.max_seq_lens_),
        "history": estimator.history_,
        "n_epochs": estimator.n_epochs_,
    }
    if hasattr(estimator, "classes_"):
        fitted["classes"] = _encode_classes(np.asarray(estimator.classes_))
    if hasattr(estimator, "y_mean_"):
        fitted["y_mean"], fitted["y_scale"] = float(estimator.y_mean_), float(estimator.y_scale_)
    if hasattr(estimator, "n_features_in_"):
        fitted["n_features_in"] = int(estimator.n_features_in_)
    from . import __version__

    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "estimator": type(estimator).__name__,
        "params": {k: _json_param(k, v) for k, v in estimator.get_params().items()},
        "fitted": fitted,
        "network": net.config,
        "dtype": str(next(net.parameters()).dtype).replace("torch.", ""),
        "frozen": [name for name, p in net.named_parameters() if not p.requires_grad],
        "extras": extras or {},
    }
    if pipeline is not None:
        config["pipeline"] = pipeline
    text = json.dumps(config, indent=1, sort_keys=True)  # fails early, before anything is written
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not (path.is_dir() and (not any(path.iterdir()) or (path / CONFIG_FILE).exists())):
        raise FileExistsError(f"{path} exists and is not a skobject2vec artifact; refusing to overwrite it.")
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
        save_file(state, str(staging / WEIGHTS_FILE), metadata={"format": FORMAT})
        (staging / CONFIG_FILE).write_text(text, encoding="utf-8")
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(staging, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def read_config(path) -> dict:
    path = Path(path)
    config_path = path / CONFIG_FILE
    if not config_path.is_file() or not (path / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"{path} is not a skobject2vec model folder: it needs {CONFIG_FILE} and "
                                f"{WEIGHTS_FILE}.")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("format") != FORMAT or config.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{config_path} is not a skobject2vec artifact of a supported version "
                         f"(format {config.get('format')!r}, version {config.get('format_version')!r}).")
    return config


def load(path, device: str | None = None):
    """Load an artifact written by :func:`save` (or ``estimator.save``).

    Parameters
    ----------
    path : str or Path
        The artifact folder.
    device : str, optional
        Where to put the weights: "cpu", "cuda", "auto". Default: the estimator's
        ``device`` parameter, resolved on this machine ("auto" falls back to CPU).

    Returns
    -------
    estimator : Object2VecClassifier, Object2VecRegressor or Pipeline
        Fitted; the artifact's ``extras`` are in ``estimator.artifact_extras_``. A
        Pipeline when a Pipeline was saved.
    """
    from safetensors.torch import load_file

    from . import estimators
    from .nn.model import Object2VecNet
    from .training import resolve_device

    path = Path(path)
    config = read_config(path)
    cls = {"Object2VecClassifier": estimators.Object2VecClassifier,
           "Object2VecRegressor": estimators.Object2VecRegressor}[config["estimator"]]
    params = dict(config["params"])
    if device is not None:
        params["device"] = device
    if device is None and str(params.get("device", "auto")).startswith("cuda") and not torch.cuda.is_available():
        params["device"] = "auto"  # trained on a GPU, loaded on a CPU-only machine
    target = resolve_device(params.get("device", "auto"))
    estimator = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
    net = Object2VecNet(config["network"])
    net.to(getattr(torch, config["dtype"]))
    net.load_state_dict(load_file(str(path / WEIGHTS_FILE), device="cpu"))
    for name in config.get("frozen", []):
        net.get_parameter(name).requires_grad_(False)
    net.to(target).eval()
    fitted = config["fitted"]
    estimator.net_ = net
    estimator.vocab_sizes_ = tuple(fitted["vocab_sizes"])
    estimator.max_seq_lens_ = tuple(fitted["max_seq_lens"])
    estimator.history_ = fitted["history"]
    estimator.n_epochs_ = fitted["n_epochs"]
    if "classes" in fitted:
        estimator.classes_ = _decode_classes(fitted["classes"])
    if "y_mean" in fitted:
        estimator.y_mean_, estimator.y_scale_ = fitted["y_mean"], fitted["y_scale"]
    if "n_features_in" in fitted:
        estimator.n_features_in_ = fitted["n_features_in"]
    estimator.artifact_extras_ = config.get("extras", {})
    if "pipeline" in config:
        return _rebuild_pipeline(config["pipeline"], estimator)
    return estimator


def _safe_steps() -> dict:
    """Pipeline steps an artifact may hold: rebuilt from JSON, never imported by name."""
    from .data.vocab import TextPairTokenizer

    return {"TextPairTokenizer": TextPairTokenizer}


def _pipeline_spec(estimator):
    """``(spec, final estimator)``: the JSON of a Pipeline's leading steps, or ``(None, estimator)``."""
    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, Pipeline):
        return None, estimator
    allowed = _safe_steps()
    steps = []
    for name, step in estimator.steps[:-1]:
        if type(step).__name__ not in allowed or type(step) is not allowed[type(step).__name__]:
            raise ValueError(f"Pipeline step {name!r} ({type(step).__name__}) cannot be stored in a safe artifact; "
                             f"only {', '.join(allowed)} steps before the estimator can (use pickle/joblib).")
        steps.append({"name": name, "class": type(step).__name__, "state": step._artifact_state()})
    return {"steps": steps, "final": estimator.steps[-1][0]}, estimator.steps[-1][1]


def _rebuild_pipeline(spec: dict, estimator):
    from sklearn.pipeline import Pipeline

    allowed = _safe_steps()
    steps = []
    for step in spec["steps"]:
        if step["class"] not in allowed:
            raise ValueError(f"Unknown pipeline step class {step['class']!r} in the artifact.")
        steps.append((step["name"], allowed[step["class"]]._from_artifact_state(step["state"])))
    return Pipeline(steps + [(spec["final"], estimator)])
