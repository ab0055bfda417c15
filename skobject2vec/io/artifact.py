"""Safe model artifact: ``model.safetensors`` (weights) + ``config.json`` (everything else).

Loading never unpickles anything, so an artifact from an untrusted source cannot
run code, and every config field and tensor is checked against the schema and
against each other before anything is allocated (:func:`check_artifact`): a
tampered or damaged artifact is one ValueError naming the file and the field,
never a model that predicts differently from the one that was saved.

Saving is atomic: the artifact is written into a staging sibling folder, which
then replaces the target in one step (``renameat2(RENAME_EXCHANGE)`` on Linux),
so the old model stays at its path until the new one is complete; staging
folders left by killed saves are removed by the next save. Files follow the
umask like any file the user writes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import math
import os
import re
import re._parser as _regex_parser  # the stdlib's own parser: the pattern as re reads it
import shutil
import tempfile
from pathlib import Path
from re._constants import MAXREPEAT as _MAXREPEAT
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from .._version import __version__
from ..data.records import is_integer
from ..devices import resolve_device
from ..fitted import MAX_SEQ_LEN, ClassTargets, FitResult, apply_result
from ..nn.model import Object2VecNet
from ..text import TextPairTokenizer

FORMAT = "skobject2vec"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

__all__ = ["save", "load", "CONFIG_FILE", "WEIGHTS_FILE"]


#: The estimator classes an artifact may name. They register themselves
#: (:func:`register_estimator`), so this module does not import the estimators.
ESTIMATOR_CLASSES: dict[str, type[Any]] = {}


def register_estimator(cls):
    """Class decorator: artifacts naming ``cls.__name__`` load as ``cls``."""
    ESTIMATOR_CLASSES[cls.__name__] = cls
    return cls


def _json_param(name, value):
    if name == "random_state" and not (value is None or isinstance(value, (int, np.integer))):
        return None  # a RandomState instance cannot be stored; the fit is done anyway
    if name == "callbacks":
        return None  # training-time objects (documented): the fitted model does not need them
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _max_label_bytes(dtype: np.dtype, values: list) -> int:
    """The widest item a stored class dtype may declare: labels of any length, but no width beyond the
    longest label stored (a tampered ``<U999999999`` would allocate gigabytes)."""
    if dtype.kind != "U":
        return 16
    longest = max((len(v) for v in values if isinstance(v, str)), default=0)
    return 4 * max(longest, 256)


def save(estimator, path, *, extras: dict | None = None, overwrite: bool = False) -> Path:
    """Write a fitted estimator to the folder ``path`` (replacing an earlier artifact there).

    An existing artifact folder (``config.json`` and ``model.safetensors`` only) is
    replaced atomically. Any other non-empty folder is refused with FileExistsError
    unless ``overwrite=True``; then only ``config.json`` and ``model.safetensors``
    are written into it, and no other file there is touched.

    ``estimator`` may also be a fitted Pipeline of :class:`TextPairTokenizer` steps
    ending in an Object2Vec estimator: the steps are stored as JSON and
    :func:`load` returns the Pipeline. ``extras`` is stored in the config (JSON).
    """
    pipeline, estimator = _pipeline_spec(estimator)
    check_is_fitted(estimator, "net_")
    path = Path(path)
    net = estimator.net_
    fitted = FitResult.of(estimator).to_config()
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "estimator": type(estimator).__name__,
        "params": {k: _json_param(k, v) for k, v in estimator.get_params(deep=False).items()},
        "fitted": fitted,
        "network": net.config,
        "dtype": str(next(net.parameters()).dtype).replace("torch.", ""),
        "frozen": [name for name, p in net.named_parameters() if not p.requires_grad],
        "extras": extras or {},
    }
    if pipeline is not None:
        config["pipeline"] = pipeline
    json.dumps(config)  # fails early, before anything is written
    state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    weights = save_safetensors(state, metadata={"format": FORMAT})
    # The config binds the weights and itself: a load checks both digests, so a flipped bit, an edited
    # value or a config from another save (a kill or a concurrent save between the two files) is refused.
    config["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    config["config_sha256"] = _config_digest(config)
    text = json.dumps(config, indent=1, sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(path)
    in_place = _check_target(path, overwrite)
    if in_place:  # overwrite=True on a folder holding other files: replace our two files only
        _write_in_place(path, weights, text)
        return path
    staging = Path(tempfile.mkdtemp(prefix=f".{_short_name(path)}.staging-{os.getpid()}-", dir=path.parent))
    try:
        (staging / WEIGHTS_FILE).write_bytes(weights)
        (staging / CONFIG_FILE).write_text(text, encoding="utf-8")
        _follow_umask(staging)
        _replace_folder(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # after an exchange it holds the old model
    return path


def _short_name(path: Path) -> str:
    """The folder's name in its staging and backup names: at most 150 characters, so that those stay
    within the file system's 255 (a 240-character folder name used to fail on its staging name)."""
    return path.name[:150]


def check_save_target(path, overwrite: bool = False) -> None:
    """Raise now what :func:`save` into ``path`` would raise at the end (before a long training run):
    FileExistsError for a file or a folder that is no artifact, OSError when it cannot be written."""
    path = Path(path)
    _check_target(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    probe = Path(tempfile.mkdtemp(prefix=f".{_short_name(path)}.staging-{os.getpid()}-probe", dir=path.parent))
    probe.rmdir()


_OURS = {CONFIG_FILE, WEIGHTS_FILE}
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?:staging|old)-(?P<pid>\d+)(?:-.*)?$")


def _is_artifact(path: Path) -> bool:
    try:
        return json.loads((path / CONFIG_FILE).read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _check_target(path: Path, overwrite: bool) -> bool:
    """Whether to write in place (True) or replace the whole folder (False); raise when refused."""
    if not path.exists():
        return False
    if not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder; refusing to overwrite it.")
    entries = {entry.name for entry in path.iterdir()}
    if not entries:
        return False
    if _is_artifact(path) and entries <= _OURS:
        return False
    if not overwrite:
        what = "a skobject2vec artifact with other files in it" if _is_artifact(path) else \
            "not a skobject2vec artifact"
        raise FileExistsError(f"{path} is {what} ({', '.join(sorted(entries - _OURS)[:5]) or CONFIG_FILE}); "
                              f"refusing to overwrite it (pass overwrite=True to write {CONFIG_FILE} and "
                              f"{WEIGHTS_FILE} into it, leaving the other files alone).")
    return True


def _config_digest(config: dict) -> str:
    """sha256 of the config's canonical JSON without its own digest."""
    body = {k: v for k, v in config.items() if k != "config_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _write_in_place(path: Path, weights: bytes, text: str) -> None:
    """overwrite=True into a foreign folder: each of our files atomically; nothing else is touched (a kill
    between the two leaves files whose digests disagree: load refuses them instead of mixing them)."""
    for name, write in ((WEIGHTS_FILE, lambda p: p.write_bytes(weights)),
                        (CONFIG_FILE, lambda p: p.write_text(text, encoding="utf-8"))):
        temporary = path / f".{name}.staging-{os.getpid()}"
        try:
            write(temporary)
            _follow_umask(temporary)
            os.replace(temporary, path / name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_leftovers(path: Path) -> None:
    """Remove the staging folders of killed saves of ``path`` (their process is gone).

    A save killed between the two renames of the fallback swap left the old model only in
    ``.NAME.old-PID``: it is put back first when ``path`` itself is missing.
    """
    for entry in path.parent.iterdir():
        match = _LEFTOVER.match(entry.name)
        if not match or match["name"] != _short_name(path) or _pid_alive(int(match["pid"])):
            continue
        if ".old-" in entry.name and not path.exists():
            os.replace(entry, path)
        else:
            shutil.rmtree(entry, ignore_errors=True)


def _umask() -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # no /proc: read it back the classic way
    os.umask(mask)
    return mask


def _follow_umask(path: Path) -> None:
    """mkdtemp makes folders 0700 and safetensors files 0600: use the user's umask instead, so that
    a server running as another user (or a container) can read the artifact."""
    mask = _umask()
    if path.is_dir():
        os.chmod(path, 0o777 & ~mask)
        for child in path.iterdir():
            os.chmod(child, 0o666 & ~mask)
    else:
        os.chmod(path, 0o666 & ~mask)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _replace_folder(staging: Path, path: Path) -> None:
    """Put ``staging`` at ``path``; the old folder (if any) ends up at ``staging``."""
    if not path.exists():
        os.replace(staging, path)
        return
    if _exchange(staging, path):
        return
    # Fallback (no renameat2): two renames. A failure of the second puts the old model back; a
    # kill between them leaves it in .NAME.old-PID, which the next save restores (_clean_leftovers).
    old = path.with_name(f".{_short_name(path)}.old-{os.getpid()}")
    os.replace(path, old)
    try:
        os.replace(staging, path)
    except BaseException:
        os.replace(old, path)
        raise
    os.replace(old, staging)


def read_config(path) -> dict:
    path = Path(path)
    config_path = path / CONFIG_FILE
    if not config_path.is_file() or not (path / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"{path} is not a skobject2vec model folder: it needs {CONFIG_FILE} and "
                                f"{WEIGHTS_FILE}.")
    return _parse_config(config_path.read_bytes(), config_path)


def _parse_config(raw: bytes, config_path: Path) -> dict:
    try:
        config = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{config_path}: not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{config_path}: expected a JSON object, got {type(config).__name__}")
    if config.get("format") != FORMAT or not isinstance(config.get("format_version", 0), int) \
            or config.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{config_path} is not a skobject2vec artifact of a supported version "
                         f"(format {config.get('format')!r}, version {config.get('format_version')!r}).")
    return config


#: Reads of an artifact that a concurrent save is replacing, before load gives up.
_READ_ATTEMPTS = 20


def _read_at(folder: int | None, path: Path, name: str) -> bytes:
    """The bytes of ``name`` in the folder open as ``folder`` (a file descriptor), or at ``path``."""
    if folder is None:
        return (path / name).read_bytes()
    fd = os.open(name, os.O_RDONLY, dir_fd=folder)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def _open_folder(path: Path) -> int | None:
    """The artifact folder opened (a descriptor that keeps naming this folder when a save exchanges
    another into its place), or None where the system cannot read files relative to one."""
    if os.open not in os.supports_dir_fd or not hasattr(os, "O_DIRECTORY"):
        return None
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def _read_one_save(path: Path, folder: int | None) -> tuple[dict, bytes] | None:
    """Config and weights read through ``folder`` and checked, or None: read again (a save came between)."""
    def config_now() -> dict | None:
        try:
            return _parse_config(_read_at(folder, path, CONFIG_FILE), path / CONFIG_FILE)
        except FileNotFoundError:
            return None

    try:
        config = _parse_config(_read_at(folder, path, CONFIG_FILE), path / CONFIG_FILE)
        weights = _read_at(folder, path, WEIGHTS_FILE)
    except FileNotFoundError:
        return None  # the save that replaced this folder removed its files while they were read
    except OSError as exc:
        raise ValueError(f"{path / WEIGHTS_FILE}: cannot be read ({exc.strerror or exc})") from None
    if "config_sha256" in config and config["config_sha256"] != _config_digest(config):
        if config_now() != config:
            return None
        raise ValueError(f"{path / CONFIG_FILE}: does not match its digest (config_sha256): it was edited or "
                         f"damaged after it was saved; refusing to load it (save the model again).")
    if "weights_sha256" not in config or config["weights_sha256"] == hashlib.sha256(weights).hexdigest():
        return config, weights
    if config_now() != config:
        return None  # written in place (a foreign folder) or, without folder reads, replaced between the reads
    raise ValueError(f"{path / WEIGHTS_FILE}: does not match the digest in {CONFIG_FILE} (weights_sha256): the "
                     f"weights were modified or damaged, or come from another save; refusing to load them.")


def _read_matching_files(path: Path) -> tuple[dict, bytes]:
    """The config and the weights' bytes of one save, checked against the config's digests.

    A save replaces the whole folder at once (one exchange). The load opens the folder and reads
    both files through that one descriptor, so both come from the save that was in place when it
    opened the folder, however many saves replace it meanwhile (a save that removes the old
    folder's files first makes it read again). Where the system cannot read relative to a folder,
    or for a foreign folder written in place, a mismatch after which the config has changed means
    another save came between the two reads, and it reads again. Artifacts written before the
    digests existed (no ``weights_sha256``) load unchecked.
    """
    for _ in range(_READ_ATTEMPTS):
        try:
            folder = _open_folder(path)
        except OSError:
            read_config(path)  # no folder there: "not a model folder"; else replaced while being opened
            continue
        try:
            found = _read_one_save(path, folder)
        finally:
            if folder is not None:
                os.close(folder)
        if found is not None:
            return found
        read_config(path)  # a file missing at the path now: "not a model folder"; else a save came between
    raise ValueError(f"{path}: the artifact kept changing while it was read ({_READ_ATTEMPTS} attempts); "
                     f"load it once the saves into it have finished.")


# ------------------------------------------------------------------ artifact checks
_DTYPES = ("float32", "float64")
_MAX_VOCAB = 2 ** 31 - 1



class _Checker:
    """Schema checks of one artifact; every failure names the file and the field."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, file: str, field: str, message: str):
        raise ValueError(f"{self.path / file}: {field}: {message}; the artifact is damaged or was modified, "
                         f"refusing to load it.")

    def get(self, mapping, key, kinds, field, file=CONFIG_FILE):
        if not isinstance(mapping, dict) or key not in mapping:
            self.fail(file, field, "missing")
        value = mapping[key]
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            self.fail(file, field, f"expected {' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__}")
        return value

    def integer(self, value, field, low, high):
        if not is_integer(value) or not low <= value <= high:
            self.fail(CONFIG_FILE, field, f"expected an integer in [{low}, {high}], got {value!r:.60}")
        return value

    def int_pair(self, mapping, key, field, low, high):
        value = self.get(mapping, key, (list,), field)
        if len(value) != 2:
            self.fail(CONFIG_FILE, field, f"expected 2 values (enc0, enc1), got {len(value)}")
        return [self.integer(v, f"{field}[{i}]", low, high) for i, v in enumerate(value)]

    def number(self, mapping, key, field, positive=False):
        value = self.get(mapping, key, (int, float), field)
        if not math.isfinite(value) or (positive and value <= 0):
            self.fail(CONFIG_FILE, field, f"expected a finite{' positive' if positive else ''} number, got {value!r}")
        return value


def check_artifact(path, config: dict) -> dict:
    """Check ``config`` and the weights file's header against each other; return the tensor specs.

    Nothing is allocated: the network is built on PyTorch's ``meta`` device and the
    safetensors header is read without the data. Raises ValueError naming the file and field.
    """


    path = Path(path)
    c = _Checker(path)
    estimator = c.get(config, "estimator", (str,), "estimator")
    if estimator not in ESTIMATOR_CLASSES:
        c.fail(CONFIG_FILE, "estimator", f"expected one of {sorted(ESTIMATOR_CLASSES)}, got {estimator!r:.60}")
    params = c.get(config, "params", (dict,), "params")
    fitted = c.get(config, "fitted", (dict,), "fitted")
    network = c.get(config, "network", (dict,), "network")
    dtype = c.get(config, "dtype", (str,), "dtype")
    if dtype not in _DTYPES:
        c.fail(CONFIG_FILE, "dtype", f"expected one of {list(_DTYPES)}, got {dtype!r:.60}")
    if params.get("dtype", dtype) != dtype:
        c.fail(CONFIG_FILE, "dtype", f"{dtype!r} differs from params.dtype {params.get('dtype')!r:.40}")
    vocab = c.int_pair(fitted, "vocab_sizes", "fitted.vocab_sizes", 1, _MAX_VOCAB)
    c.int_pair(fitted, "max_seq_lens", "fitted.max_seq_lens", 1, MAX_SEQ_LEN)
    c.get(fitted, "history", (list,), "fitted.history")
    c.integer(c.get(fitted, "n_epochs", (int,), "fitted.n_epochs"), "fitted.n_epochs", 0, 2 ** 31)
    net_vocab = c.int_pair(network, "vocab_sizes", "network.vocab_sizes", 1, _MAX_VOCAB)
    if net_vocab != vocab:
        c.fail(CONFIG_FILE, "network.vocab_sizes", f"{net_vocab} differs from fitted.vocab_sizes {vocab}")
    n_outputs = c.integer(c.get(network, "n_outputs", (int,), "network.n_outputs"), "network.n_outputs", 1, 2 ** 20)
    if ESTIMATOR_CLASSES[estimator]._task == "classification":
        spec = c.get(fitted, "classes", (dict,), "fitted.classes")
        values = c.get(spec, "values", (list,), "fitted.classes.values")
        kind = c.get(spec, "dtype", (str,), "fitted.classes.dtype")
        try:
            if kind != "object" and (np.dtype(kind).kind not in "iufbU"
                                     or np.dtype(kind).itemsize > _max_label_bytes(np.dtype(kind), values)):
                raise ValueError(f"unsupported dtype {kind!r:.40}")
            classes = ClassTargets.from_config({"classes": spec}).classes
        except (TypeError, ValueError, OverflowError) as exc:
            c.fail(CONFIG_FILE, "fitted.classes", f"cannot be read as {kind!r:.40} ({str(exc)[:100]})")
        if classes.ndim != 1 or len(values) < 2 or len(np.unique(classes)) != len(classes):
            c.fail(CONFIG_FILE, "fitted.classes", "expected at least 2 distinct class labels")
        if len(classes) != n_outputs:
            c.fail(CONFIG_FILE, "network.n_outputs", f"{n_outputs} outputs for {len(classes)} classes")
    else:
        if n_outputs != 1:
            c.fail(CONFIG_FILE, "network.n_outputs", f"a regressor has 1 output, got {n_outputs}")
        c.number(fitted, "y_mean", "fitted.y_mean")
        c.number(fitted, "y_scale", "fitted.y_scale", positive=True)
    for key in ("n_records", "n_features_in"):  # optional: streamed fits; inputs with columns
        if key in fitted:
            c.integer(c.get(fitted, key, (int,), f"fitted.{key}"), f"fitted.{key}", 0, 2 ** 62)
    if "feature_names_in" in fitted:
        names = c.get(fitted, "feature_names_in", (list,), "fitted.feature_names_in")
        if not all(isinstance(name, str) for name in names):
            c.fail(CONFIG_FILE, "fitted.feature_names_in", "expected a list of strings")
    frozen = c.get(config, "frozen", (list,), "frozen") if "frozen" in config else []
    try:
        with torch.device("meta"):
            expected = {k: (tuple(v.shape), dtype) for k, v in Object2VecNet(network).state_dict().items()}
    except Exception as exc:  # any malformed network field: KeyError, TypeError, ValueError from torch...
        c.fail(CONFIG_FILE, "network", f"cannot build the network ({type(exc).__name__}: {str(exc)[:150]})")
    for name in frozen:
        if name not in expected:
            c.fail(CONFIG_FILE, "frozen", f"{name!r:.60} is not a parameter of the network")
    try:
        with safe_open(str(path / WEIGHTS_FILE), framework="pt", device="cpu") as handle:
            found = {k: (tuple(handle.get_slice(k).get_shape()), handle.get_slice(k).get_dtype())
                     for k in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        c.fail(WEIGHTS_FILE, "header", f"not a readable safetensors file ({str(exc)[:150]})")
    names = {"F32": "float32", "F64": "float64", "F16": "float16", "BF16": "bfloat16"}
    for key in sorted(set(expected) | set(found)):
        if key not in found:
            c.fail(WEIGHTS_FILE, key, "tensor missing")
        if key not in expected:
            c.fail(WEIGHTS_FILE, key, "unexpected tensor")
        shape, kind = found[key]
        if shape != expected[key][0]:
            c.fail(WEIGHTS_FILE, key, f"shape {list(shape)} differs from the {list(expected[key][0])} "
                                      f"the config implies")
        if names.get(kind, kind) != dtype:
            c.fail(WEIGHTS_FILE, key, f"dtype {names.get(kind, kind)} differs from the config's {dtype}")
    return expected


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
    path = Path(path)
    config, weights = _read_matching_files(path)
    check_artifact(path, config)  # before anything is built or allocated
    cls = ESTIMATOR_CLASSES[config["estimator"]]
    params = dict(config["params"])
    unknown = sorted(set(params) - set(cls().get_params(deep=False)))
    if unknown:
        raise ValueError(f"{path / CONFIG_FILE}: params: unknown parameter {unknown[0]!r:.60}; the artifact is "
                         f"damaged or was written by a newer version; refusing to load it.")
    if device is not None:
        params["device"] = device
    if device is None:
        try:
            resolve_device(params.get("device", "auto"))
        except ValueError:  # trained on an accelerator (cuda, mps, xpu, ...) this machine lacks
            params["device"] = "auto"
    target = resolve_device(params.get("device", "auto"))
    estimator = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
    net = Object2VecNet(config["network"])
    net.to(getattr(torch, config["dtype"]))
    try:
        state = load_safetensors(weights)
    except Exception as exc:  # the header was fine, the data is not
        raise ValueError(f"{path / WEIGHTS_FILE}: cannot be read ({str(exc)[:150]})") from None
    for key, tensor in state.items():
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{path / WEIGHTS_FILE}: {key}: holds NaN or infinite weights; the artifact is "
                             f"damaged or was modified, refusing to load it.")
    net.load_state_dict(state)
    for name in config.get("frozen", []):
        net.get_parameter(name).requires_grad_(False)
    net.to(target).eval()
    apply_result(estimator, FitResult.from_config(net, config["fitted"]))
    estimator.artifact_extras_ = config.get("extras", {})
    if "pipeline" in config:
        return _rebuild_pipeline(config["pipeline"], estimator)
    return estimator


def _safe_steps() -> dict:
    """Pipeline steps an artifact may hold: rebuilt from JSON, never imported by name."""
    return {"TextPairTokenizer": TextPairTokenizer}


def _pipeline_spec(estimator):
    """``(spec, final estimator)``: the JSON of a Pipeline's leading steps, or ``(None, estimator)``."""
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


#: What a repeat (``+``, ``*``, ``?``, ``{m,n}``) may apply to in a token_pattern read from an artifact:
#: one character, class or category, never a group (``(a|a)+``, ``(\w+)+``).
_ATOMS = ("LITERAL", "NOT_LITERAL", "IN", "ANY", "CATEGORY")
_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
#: Safe elements besides repeats and atoms: alternation, plain or non-capturing groups, anchors.
_STRUCTURE = ("BRANCH", "SUBPATTERN", "AT", "ATOMIC_GROUP")


def _pattern_problem(items) -> str | None:
    r"""Why a parsed pattern (``re._parser`` items) is outside the safe grammar, or None.

    The grammar: sequences and alternations of atoms, each atom repeated at most by itself,
    with at most one unbounded repeat per sequence. A backtracking matcher runs such a
    pattern in time linear in the text per starting position (no repeated group can be
    matched in several ways, which is what makes ``(a|a)+$`` or ``(\w+)+$`` exponential,
    and no two unbounded repeats share a sequence, which makes ``\w*\w*\w*x`` polynomial).
    """
    unbounded = 0
    for op, value in items:
        name = str(op)
        if name in _REPEATS:
            low, high, inner = value
            if not (len(inner) == 1 and str(inner[0][0]) in _ATOMS):
                return "repeats a group"
            if high == _MAXREPEAT:
                unbounded += 1
                if unbounded > 1:
                    return "has two unbounded repeats in one sequence"
        elif name == "BRANCH":
            for branch in value[1]:
                problem = _pattern_problem(branch)
                if problem:
                    return problem
        elif name in ("SUBPATTERN", "ATOMIC_GROUP"):
            problem = _pattern_problem(value[-1] if name == "SUBPATTERN" else value)
            if problem:
                return problem
        elif name not in _ATOMS and name not in _STRUCTURE:
            return f"uses {name.lower()} (backreferences, lookarounds and conditionals are not allowed)"
    return None


def check_token_pattern(pattern, where: str) -> None:
    r"""Refuse a saved token_pattern that is not a string, does not compile, or falls outside a safe grammar.

    A Pipeline artifact's tokenizer regex runs on every request: from an untrusted source, a
    pattern that backtracks catastrophically is a denial of service. Rather than look for
    known bad shapes (alternations such as ``(a|a)+$`` slipped past such a check), only a
    grammar that cannot backtrack exponentially is accepted (:func:`_pattern_problem`); the
    default ``\w+|[^\w\s]`` is in it. A pattern outside it can be set again after
    loading (``pipeline.set_params(...)``).
    """
    if not isinstance(pattern, str):
        raise ValueError(f"{where}: token_pattern must be a string, got {type(pattern).__name__}")
    try:
        re.compile(pattern)
        parsed = _regex_parser.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ValueError(f"{where}: token_pattern {pattern[:80]!r} is not a valid regular expression ({exc})") from None
    problem = _pattern_problem(parsed.data)
    if problem:
        raise ValueError(f"{where}: token_pattern {pattern[:80]!r} {problem}, which can take exponential or "
                         f"polynomial time on some inputs; refusing to load it from an artifact (allowed: atoms "
                         f"repeated by themselves, alternation, groups; at most one unbounded repeat in a row).")


def _rebuild_pipeline(spec: dict, estimator):
    allowed = _safe_steps()
    steps = []
    for step in spec["steps"]:
        if step["class"] not in allowed:
            raise ValueError(f"Unknown pipeline step class {step['class']!r} in the artifact.")
        params = step.get("state", {}).get("params", {}) if isinstance(step.get("state"), dict) else {}
        if isinstance(params, dict) and "token_pattern" in params:
            check_token_pattern(params["token_pattern"], f"{CONFIG_FILE}: pipeline step {step.get('name')!r}")
        steps.append((step["name"], allowed[step["class"]]._from_artifact_state(step["state"])))
    return Pipeline(steps + [(spec["final"], estimator)])
