"""``skobject2vec``: train, predict, embed and serve from the command line.

The commands mirror a SageMaker Object2Vec job: ``train`` takes the channels
(train, validation, test, auxiliary) and the hyperparameter dict; ``predict`` and
``embed`` are a batch transform over JSON Lines in SageMaker's response shape;
``serve`` runs the ``/ping`` + ``/invocations`` endpoint. Everything goes through
the same estimator, reader and artifact functions the Python API uses.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import re
import sys
from itertools import islice
from pathlib import Path

import numpy as np

from . import sagemaker_env
from ._version import __version__
from .data.jsonlines import dumps, iter_numbered_records, open_text, read_numbered_records, read_records
from .estimators import from_sagemaker_hyperparameters
from .fitted import ClassTargets
from .hyperparameters import HYPERPARAMETERS, SAGEMAKER_ONLY
from .inference import task_of
from .io.artifact import check_save_target, load
from .parallel import fit_stream, is_main_process
from .sagemaker_env import failure_reporting

__all__ = ["main", "build_parser"]


class CLIError(Exception):
    """A user error: printed as one line, exit code 1."""


def _parse_set(values):
    overrides = {}
    for item in values or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CLIError(f"--set expects name=value, got {item!r}")
        overrides[name.strip()] = value.strip()
    return overrides


def _load_hyperparameters(path, overrides):
    hp = {}
    if path is not None:
        try:
            hp = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CLIError(f"hyperparameter file {path} not found") from None
        except json.JSONDecodeError as exc:
            raise CLIError(f"{path}: invalid JSON ({exc})") from None
        if not isinstance(hp, dict):
            raise CLIError(f"{path}: expected a JSON object of hyperparameters, got {type(hp).__name__}")
    hp.update(overrides)
    return hp


#: SageMaker's rule for the file names of the auxiliary channel: a plain name, no folders.
_AUXILIARY_NAME = re.compile(r"[A-Za-z0-9._]+")


def _check_auxiliary_name(key, name, auxiliary):
    """A file name inside the auxiliary folder, never a path out of it (``../../etc/passwd``)."""
    if not isinstance(name, str) or not _AUXILIARY_NAME.fullmatch(name) or set(name) == {"."}:
        raise CLIError(f"{key}={name!r:.80}: SageMaker allows only a file name made of [A-Za-z0-9._] inside "
                       f"the auxiliary channel (no folders)")
    path = Path(auxiliary, name)
    root = Path(auxiliary).resolve()
    if root not in path.resolve().parents:  # a symbolic link out of the folder
        raise CLIError(f"{key}={name!r}: the file is not inside the auxiliary channel {auxiliary}")
    return path


def _resolve_auxiliary(hp, auxiliary):
    """SageMaker names pretrained/vocab files inside the auxiliary channel."""
    for side in (0, 1):
        for key in (f"enc{side}_pretrained_embedding_file", f"enc{side}_vocab_file"):
            name = hp.get(key)
            if name in (None, ""):
                continue
            path = _check_auxiliary_name(key, name, auxiliary) if auxiliary is not None else Path(name)
            if not path.is_file():
                where = f"in the auxiliary channel {auxiliary}" if auxiliary is not None else "(no --auxiliary given)"
                raise CLIError(f"{key}={name!r}: file not found {where}")
            hp[key] = str(path)
    return hp


def _metric_lines(prefix, scores, epoch=None):
    """SageMaker-style metric lines that its metric regexes scrape."""
    lines = []
    for name, value in scores.items():
        kind = "<score>" if name == "accuracy" else "<loss>"
        at = f"epoch={epoch}, " if epoch is not None else ""
        lines.append(f"#quality_metric: host=localhost, {at}{prefix} {name} {kind}={value}")
    return lines


def cmd_train(args):
    sagemaker_hps = sagemaker_env.apply_training_environment(args)  # no --train: SageMaker's container contract
    if args.model_dir is None:
        raise CLIError("--model-dir is required (or run without --train to read SageMaker's environment)")
    hp = {**sagemaker_hps, **_load_hyperparameters(args.hyperparameters, _parse_set(args.set))}
    hp = _resolve_auxiliary(hp, args.auxiliary)
    overrides, epoch_lines = _train_verbosity(args, hp)
    if args.random_state is not None:
        overrides["random_state"] = args.random_state
    if args.device is not None:
        overrides["device"] = args.device
    estimator = _initial_estimator(args, hp, overrides)
    if is_main_process():  # a model folder that cannot be written is found now, not after training
        check_save_target(args.model_dir)
    task = task_of(estimator)
    # Every channel is read (and so checked) before training: a bad test file found after an hour of
    # training used to cost the trained model.
    X_test = y_test = None
    if args.test is not None:
        X_test, y_test = read_records(args.test, label=task)
    with sagemaker_env.EpochLines(_metric_lines, summary=epoch_lines).attached():  # printed as each epoch ends
        _fit(args, estimator, task)

    if not is_main_process():
        return 0  # every rank holds the same model; rank 0 prints the metrics and writes the one artifact
    estimator.save(args.model_dir)  # saved first: a failure in the test metrics does not lose the model
    print(f"model saved to {args.model_dir}", file=sys.stderr)
    if X_test is not None:
        for line in _metric_lines("test", test_metrics(estimator, X_test, y_test)):
            print(line)
    return 0


def _train_verbosity(args, hp):
    """``verbose`` for the estimator, and whether the CLI prints the per-epoch summary lines itself.

    An explicit ``--set verbose=N`` (or hyperparameter) is kept. Otherwise a terminal gets the
    progress bar and a line per epoch (verbose=2); a log file (no TTY) only the lines, without
    carriage-return progress noise.
    """
    if args.quiet:
        return {"verbose": 0}, False
    if "verbose" in hp:
        return {}, False
    if sys.stderr.isatty():
        return {"verbose": 2}, False
    return {"verbose": 0}, True


def _initial_estimator(args, hp, overrides):
    """A new estimator, or (a ``model`` channel) the previous artifact, warm-started."""
    estimator = from_sagemaker_hyperparameters(hp, **overrides)
    if getattr(args, "initial_model", None) is None:
        return estimator

    previous = load(args.initial_model, device=overrides.get("device"))
    if type(previous) is not type(estimator):
        raise CLIError(f"the model channel holds an {type(previous).__name__}, but the hyperparameters describe "
                       f"an {type(estimator).__name__}")
    given = {k: v for k, v in estimator.get_params().items() if k in hp or k in overrides}
    return previous.set_params(**given, warm_start=True)


def _fit(args, estimator, task):
    if args.streaming or Path(args.train).is_dir() or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Larger than memory, a folder of shards, or data parallel under torchrun.
        fit_stream(estimator, args.train, X_val=args.validation, buffer_size=args.buffer_size)
    else:
        X, y, lines = read_numbered_records(args.train, label=task)
        if not X:
            raise CLIError(f"{args.train}: no records")
        fit_kwargs = {}
        if args.validation is not None:
            fit_kwargs["X_val"], fit_kwargs["y_val"] = read_records(args.validation, label=task)
        with _records_named_by_line(args.train, lines):
            estimator.fit(X, y, **fit_kwargs)


@contextlib.contextmanager
def _records_named_by_line(path, lines):
    """A fit's "record N" (its position in the list) becomes ``file:line`` in the error message."""
    try:
        yield
    except ValueError as exc:
        message = str(exc)
        if "X_val" not in message:
            def where(match):
                i = int(match.group(1))
                return f"{path}:{lines[i]}" if 0 <= i < len(lines) else match.group(0)

            named = re.sub(r"\brecord (\d+)\b", where, message, count=1)
            if named != message:
                raise ValueError(named) from None
        raise


def test_metrics(estimator, X, y) -> dict:
    """SageMaker's test-channel metrics: accuracy + cross_entropy, or mean_squared_error."""
    if task_of(estimator) == "classification":
        targets = ClassTargets(estimator.classes_)
        bad = targets.first_unknown(y)
        if bad is not None:
            raise CLIError(f"test record {bad}: label {_plain(y[bad])!r} is not one of the training classes "
                           f"{estimator.classes_.tolist()}")
        index = targets.transform(y)
        log_proba = estimator.predict_log_proba(X)
        return {"cross_entropy": float(-log_proba[np.arange(len(y)), index].mean()),
                "accuracy": float(np.mean(log_proba.argmax(1) == index))}
    return {"mean_squared_error": float(np.mean((estimator.predict(X) - y) ** 2))}


@contextlib.contextmanager
def _output(path):
    if path in (None, "-"):
        yield sys.stdout
        return

    # Written under a temporary name in the same folder and renamed at the end: a failure (a bad
    # record, a damaged input, Ctrl-C) leaves no partial output, and an earlier output stays intact.
    # A symlink is written through (its target replaced, the link kept); a device or a pipe
    # (/dev/stdout, a FIFO) cannot be renamed over, so it is written directly.
    path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file():
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a directory, not an output file", str(path))
        with open_text(path, "w") as handle:
            yield handle
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".tmp-{os.getpid()}.{path.name[:200]}")  # same suffix: .gz still compresses
    try:
        with open_text(temporary, "w") as handle:
            yield handle
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _chunks(iterator, size):
    while True:
        chunk = list(islice(iterator, size))
        if not chunk:
            return
        yield chunk


def _batch_transform(args, fields, respond):
    """Stream ``--input`` in chunks of ``--batch-size`` records: memory stays bounded."""
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")
    estimator = load(args.model_dir, device=args.device)
    source = sys.stdin.buffer if args.input == "-" else args.input
    name = "<stdin>" if args.input == "-" else args.input
    count = 0
    with _output(args.output) as out:
        for chunk in _chunks(iter_numbered_records(source, fields=fields), args.batch_size):
            try:
                rows = list(respond(estimator, [record for _, record, _ in chunk]))
            except (ValueError, CLIError) as exc:
                raise CLIError(_locate_in_input(str(exc), name, [number for number, _, _ in chunk])) from None
            for row in rows:
                out.write(dumps(row) + "\n")
            count += len(chunk)
    print(f"{count} records written to {'stdout' if args.output in (None, '-') else args.output}", file=sys.stderr)
    return 0


def _locate_in_input(message: str, name: str, lines: list) -> str:
    """Turn the estimator's "record N" (N counted within one --batch-size chunk) into ``file:line``."""
    match = re.search(r"\brecord (\d+)\b", message)
    if match and int(match[1]) < len(lines):
        return f"{name}:{lines[int(match[1])]}: {message}"
    return f"{name}: {message}"


def cmd_predict(args):
    def respond(estimator, records):
        if task_of(estimator) == "classification":
            return ({"scores": row} for row in estimator.predict_proba(records).tolist())
        return ({"scores": [value]} for value in estimator.predict(records).tolist())

    return _batch_transform(args, "pair", respond)


def cmd_embed(args):
    def respond(estimator, records):
        if args.side != "auto":
            records = [{args.side: r[args.side]} if args.side in r else r for r in records]
        sides = np.array(["in0" if "in0" in r else "in1" for r in records])
        if any(len(r) > 1 for r in records):
            i = next(i for i, r in enumerate(records) if len(r) > 1)
            raise CLIError(f"record {i} has both in0 and in1: embed takes single inputs (or pass --side in0|in1)")
        out = [None] * len(records)
        for side in ("in0", "in1"):
            index = np.flatnonzero(sides == side)
            if index.size:
                vectors = estimator.transform([records[i] for i in index]).tolist()
                for i, vector in zip(index, vectors):
                    out[i] = {"embeddings": vector}
        return out

    return _batch_transform(args, "any", respond)


def _payload_bytes(mb: float) -> int:
    """``--max-payload-mb`` in bytes; inf, NaN, 0 or negative is a one-line error, not a traceback."""
    if not (math.isfinite(mb) and 0 < mb <= 1024 * 1024):
        raise CLIError(f"--max-payload-mb must be a number of megabytes in (0, 1048576], got {mb!r}")
    return max(int(mb * 1024 * 1024), 1)


def _header_bytes(kib: float) -> int:
    if not (math.isfinite(kib) and kib > 0):
        raise CLIError(f"--max-header-kb must be a positive number of KiB, got {kib}")
    return max(int(kib * 1024), 1)


def cmd_serve(args):
    try:
        from .serving import serve  # the [serve] extra (starlette, uvicorn): imported only to serve
    except ModuleNotFoundError as exc:  # the serve extra is not installed
        raise CLIError(f'serve needs the "serve" extra (missing module {exc.name!r}): '
                       f'pip install "skobject2vec[serve]"') from None

    if not 1 <= args.port <= 65535:
        raise CLIError(f"--port must be in [1, 65535], got {args.port}")
    serve(args.model_dir, host=args.host, port=args.port, workers=args.workers,
          max_payload_bytes=_payload_bytes(args.max_payload_mb), read_timeout_s=args.read_timeout_s,
          max_connections=args.max_connections, max_reply_values=args.max_reply_values,
          write_timeout_s=args.write_timeout_s, shutdown_grace_s=args.shutdown_grace_s,
          max_head_bytes=_header_bytes(args.max_header_kb), max_headers=args.max_headers)
    return 0


def _hyperparameter_help():
    rows = [f"  {hp.name} ({hp.describe_range()}; default {hp.default!r}): {hp.doc}"
            for hp in list(HYPERPARAMETERS) + list(SAGEMAKER_ONLY.values())]
    return "hyperparameters (SageMaker names, values as strings or JSON types):\n" + "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skobject2vec",
        description="Object2Vec (SageMaker-compatible) on PyTorch: train, batch-predict, embed and serve.",
    )
    _add_version(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,predict,embed,serve}")

    train = sub.add_parser(
        "train", help="train a model from JSON Lines channels",
        description="Train from SageMaker JSON Lines channels with a SageMaker hyperparameter dict. "
                    "Per-epoch metrics are printed under SageMaker's names "
                    "(train/validation/test cross_entropy, accuracy, mean_squared_error).",
        epilog=_hyperparameter_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--train", metavar="FILE",
                       help="training records (.jsonl or .jsonl.gz), or a folder of shards (streamed). Without "
                            "it, the SageMaker training environment is read: SM_CHANNEL_<NAME> or "
                            "/opt/ml/input/data/<name>, SM_HPS or /opt/ml/input/config/hyperparameters.json, "
                            "SM_MODEL_DIR or /opt/ml/model; a failure is written to /opt/ml/output/failure")
    train.add_argument("--validation", metavar="FILE",
                       help="validation records: early stopping, validation metrics, best model kept")
    train.add_argument("--test", metavar="FILE", help="test records: test metrics after training")
    train.add_argument("--auxiliary", metavar="DIR",
                       help="folder holding the pretrained embedding and vocab files named in the hyperparameters")
    train.add_argument("--hyperparameters", metavar="FILE",
                       help="JSON object of hyperparameters, as SageMaker passes them (strings are fine)")
    train.add_argument("--set", action="append", metavar="NAME=VALUE",
                       help="override one hyperparameter (repeatable), e.g. --set epochs=5")
    train.add_argument("--model-dir", metavar="DIR",
                       help="where the model artifact is written (required with --train)")
    train.add_argument("--random-state", type=int, metavar="N", help="seed: same seed, same model")
    train.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    train.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    train.add_argument("--streaming", action="store_true",
                       help="stream --train/--validation instead of loading them (automatic for a folder of "
                            "shards and under torchrun, where training is data parallel)")
    train.add_argument("--buffer-size", type=int, default=10000, metavar="N",
                       help="streaming: records held in the shuffle buffer (default 10000)")
    train.set_defaults(func=cmd_train)

    for name, func, what, fields_help in (
        ("predict", cmd_predict, "pair predictions: one {\"scores\": [...]} line per record "
                                 "(class probabilities, or [value] for regression)", "records with in0 and in1"),
        ("embed", cmd_embed, "encoder embeddings: one {\"embeddings\": [...]} line per record "
                             "(enc0 for records with in0, enc1 for records with in1)", "records with in0 or in1"),
    ):
        p = sub.add_parser(name, help=what.split(":")[0], description=f"Batch transform: {what}. Streams the "
                           "input in chunks, so memory stays bounded for any file size.")
        p.add_argument("--model-dir", required=True, metavar="DIR", help="model artifact folder")
        p.add_argument("--input", required=True, metavar="FILE", help=f"JSON Lines {fields_help} ('-' for stdin)")
        p.add_argument("--output", default="-", metavar="FILE", help="JSON Lines output ('-' for stdout, default)")
        p.add_argument("--batch-size", type=int, default=10000, metavar="N", help="records per chunk (default 10000)")
        p.add_argument("--device", help="auto, cpu, cuda, cuda:N (default: the model's setting)")
        if name == "embed":
            p.add_argument("--side", choices=("auto", "in0", "in1"), default="auto",
                           help="embed this side of pair records (default auto: the side each record has)")
        p.set_defaults(func=func)

    serve = sub.add_parser("serve", help="run the SageMaker-compatible HTTP endpoint (/ping, /invocations)",
                           description="Serve a model over HTTP with SageMaker's Object2Vec endpoint protocol.")
    serve.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"), metavar="DIR",
                       help="model artifact folder (default $SM_MODEL_DIR or /opt/ml/model)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; 0.0.0.0 in a container)")
    serve.add_argument("--port", type=int, default=int(os.environ.get("SAGEMAKER_BIND_TO_PORT", 8080)),
                       help="port (default 8080, SageMaker's)")
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    serve.add_argument("--max-payload-mb", type=float, default=6.0,
                       help="largest request body in MB (default 6, SageMaker's); larger ones get 413")
    serve.add_argument("--read-timeout-s", type=float, default=60.0, metavar="S",
                       help="a request not fully received within S seconds gets 408 and is closed "
                            "(default 60, SageMaker's invocation timeout)")
    serve.add_argument("--max-connections", type=int, default=512, metavar="N",
                       help="open connections per server process; more get 503 (default 512)")
    serve.add_argument("--write-timeout-s", type=float, default=60.0, metavar="S",
                       help="a reply its client does not read for S seconds is aborted (default 60)")
    serve.add_argument("--shutdown-grace-s", type=float, default=5.0, metavar="S",
                       help="on SIGTERM, requests already received get S seconds to be answered; requests "
                            "still arriving get 503 at once (default 5)")
    serve.add_argument("--max-header-kb", type=float, default=64.0, metavar="KB",
                       help="largest request line and headers in KiB; larger heads get 431 (default 64)")
    serve.add_argument("--max-headers", type=int, default=100, metavar="N",
                       help="headers per request; more get 431 (default 100)")
    serve.add_argument("--max-reply-values", type=int, default=2 ** 25, metavar="N",
                       help="numbers one reply may hold (records x output width); larger requests get 413 "
                            "(default 33554432)")
    serve.set_defaults(func=cmd_serve)
    return parser


def _add_version(parser):
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")


def _plain(value):
    """A NumPy scalar as the Python value, so that messages read 5, not np.int64(5)."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", None) == 0 else value


def _failure_reporting(args):
    return failure_reporting(args)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _failure_reporting(args):  # SageMaker mode: also /opt/ml/output/failure
            return args.func(args)
    except (CLIError, ValueError, FileNotFoundError, FileExistsError, KeyError) as exc:
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"skobject2vec {args.command}: error: {message}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file-system error (read-only, full disk, a folder where a file goes, ...)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"skobject2vec {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"skobject2vec {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
