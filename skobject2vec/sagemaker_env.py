"""SageMaker's training-container contract for ``skobject2vec train``, and live metric lines.

When ``skobject2vec train`` gets no ``--train`` path it runs as a SageMaker training
container (``docker run IMAGE train``) and reads what SageMaker provides:

==========================  ==========================================  =====================================
what                        environment variable (sagemaker-training)   file-system fallback
==========================  ==========================================  =====================================
channel ``<name>``          ``SM_CHANNEL_<NAME>``                       ``/opt/ml/input/data/<name>/``
hyperparameters             ``SM_HPS`` (JSON object)                    ``/opt/ml/input/config/hyperparameters.json``
model artifact (written)    ``SM_MODEL_DIR``                            ``/opt/ml/model``
failure message (written)   ``SM_OUTPUT_DIR`` (``<dir>/failure``)       ``/opt/ml/output/failure``
==========================  ==========================================  =====================================

The channels are Object2Vec's: ``train`` (required), ``validation``, ``test``,
``auxiliary`` (pretrained vectors and vocabularies), and ``model``: a previous
artifact (folder or ``model.tar.gz``) to continue training from (SageMaker's
incremental training). ``SAGEMAKER_BASE_DIR`` replaces ``/opt/ml`` (for tests).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import cast

__all__ = ["CHANNELS", "base_dir", "channel_path", "hyperparameters", "model_dir", "failure_path",
           "apply_training_environment", "failure_reporting", "write_failure", "EpochLines"]

#: Object2Vec's training channels, in the order SageMaker documents them.
CHANNELS = ("train", "validation", "test", "auxiliary", "model")


def base_dir() -> Path:
    """``/opt/ml``, or ``$SAGEMAKER_BASE_DIR``."""
    return Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))


def channel_path(name: str) -> Path | None:
    """The folder of channel ``name`` (``SM_CHANNEL_<NAME>`` or ``<base>/input/data/<name>``), None if absent."""
    env = os.environ.get(f"SM_CHANNEL_{name.upper()}")
    path = Path(env) if env else base_dir() / "input" / "data" / name
    return path if path.exists() else None


def _data_source(path: Path) -> str:
    """A channel folder holding one data file is read as that file (in memory); several
    files are streamed as shards."""
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")]
        if len(files) == 1:
            return str(files[0])
    return str(path)


def hyperparameters() -> dict:
    """``SM_HPS``, else ``<base>/input/config/hyperparameters.json``, else ``{}``."""
    raw = os.environ.get("SM_HPS")
    where = "SM_HPS"
    if raw is None:
        path = base_dir() / "input" / "config" / "hyperparameters.json"
        if not path.is_file():
            return {}
        raw, where = path.read_text(encoding="utf-8"), str(path)
    try:
        hp = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: invalid JSON ({exc})") from None
    if not isinstance(hp, dict):
        raise ValueError(f"{where}: expected a JSON object of hyperparameters, got {type(hp).__name__}")
    return hp


def model_dir() -> Path:
    """``SM_MODEL_DIR``, else ``<base>/model``."""
    env = os.environ.get("SM_MODEL_DIR")
    return Path(env) if env else base_dir() / "model"


def failure_path() -> Path:
    """``$SM_OUTPUT_DIR/failure``, else ``<base>/output/failure``."""
    env = os.environ.get("SM_OUTPUT_DIR")
    return (Path(env) if env else base_dir() / "output") / "failure"


def write_failure(message: str) -> Path | None:
    """Write ``message`` where SageMaker reads a job's failure reason; None if impossible.

    Only inside a SageMaker layout: ``SM_OUTPUT_DIR`` is set or the base folder
    (``/opt/ml``) exists, so a laptop run never creates ``/opt/ml``.
    """
    path = failure_path()
    if not os.environ.get("SM_OUTPUT_DIR") and not base_dir().is_dir():
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(message.rstrip("\n") + "\n", encoding="utf-8")
    except OSError:
        return None
    return path


def _previous_model(path: Path) -> str:
    """A model channel holds the artifact folder, or a ``model.tar.gz`` of it."""
    if (path / "config.json").is_file():
        return str(path)
    archives = sorted(path.glob("*.tar.gz"))
    if not archives:
        raise ValueError(f"model channel {path}: no config.json nor model.tar.gz")
    target = Path(tempfile.mkdtemp(prefix="skobject2vec-model-"))
    # the job's process reads the artifact once at start; its extracted copy goes when the process ends
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    try:
        with tarfile.open(archives[0]) as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise ValueError(f"model channel {path}: archive {archives[0].name} cannot be extracted "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from None
    return str(target)


def apply_training_environment(args) -> dict:
    """Fill ``args`` from the SageMaker environment when ``--train`` is not given.

    Sets ``args.train``, ``args.validation``, ``args.test``, ``args.auxiliary``,
    ``args.model_dir`` (those not given) and ``args.initial_model``, and
    ``args.sagemaker = True``. Returns the SageMaker hyperparameters (``{}`` when
    ``--train`` is given: then nothing is read from the environment).
    """
    args.sagemaker = False
    args.initial_model = getattr(args, "initial_model", None)
    if args.train is not None:
        return {}
    args.sagemaker = True
    train = channel_path("train")
    if train is None:
        raise ValueError(f"no --train given and no train channel: set SM_CHANNEL_TRAIN or provide "
                         f"{base_dir() / 'input' / 'data' / 'train'}")
    args.train = _data_source(train)
    for name in ("validation", "test"):
        if getattr(args, name) is None and channel_path(name) is not None:
            setattr(args, name, _data_source(cast(Path, channel_path(name))))  # not None: checked above
    if args.auxiliary is None and channel_path("auxiliary") is not None:
        args.auxiliary = str(channel_path("auxiliary"))
    if channel_path("model") is not None:
        args.initial_model = _previous_model(cast(Path, channel_path("model")))  # not None: checked above
    if args.model_dir is None:
        args.model_dir = str(model_dir())
    return hyperparameters() if args.hyperparameters is None else {}


@contextlib.contextmanager
def failure_reporting(args):
    """In SageMaker mode, write any error's message to the failure file, then re-raise."""
    try:
        yield
    except BaseException as exc:
        if getattr(args, "sagemaker", False) and not isinstance(exc, (SystemExit, KeyboardInterrupt)):
            message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
            write_failure(f"{type(exc).__name__}: {message}")
        raise


class EpochLines(logging.Handler):
    """Prints each epoch's ``#quality_metric`` lines (and optionally its summary line) as
    soon as the epoch ends, from the records :class:`skobject2vec.training.EpochRun`
    logs. Attach with :meth:`attached`."""

    def __init__(self, metric_lines, summary: bool, stream=None):
        super().__init__(logging.INFO)
        self.metric_lines, self.summary = metric_lines, summary
        self.stream = stream

    def emit(self, record):
        epoch_record = getattr(record, "epoch_record", None)
        if epoch_record is None or not getattr(record, "main_process", True):
            return
        stream = self.stream or sys.stdout
        lines = [record.getMessage()] if self.summary else []
        for key, value in epoch_record.items():
            if ":" in key:
                channel, name = key.split(":", 1)
                lines += self.metric_lines(channel, {name: value}, epoch_record["epoch"])
        for line in lines:
            print(line, file=stream, flush=True)

    @contextlib.contextmanager
    def attached(self, logger_name="skobject2vec"):
        logger = logging.getLogger(logger_name)
        level = logger.level
        logger.addHandler(self)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)
