"""Helpers shared by the benchmark scripts: generated data, side-by-side timing,
tables and JSON results.

Every script prints its tables as reStructuredText "simple tables", so the docs
(``docs/performance.rst``, ``docs/accuracy.rst``) quote them verbatim, and writes
the same numbers to ``benchmarks/results/<name>.json`` (git-ignored).
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

if str(REPO_ROOT) not in sys.path:  # run from a fresh clone without installing
    sys.path.insert(0, str(REPO_ROOT))


# ------------------------------------------------------------------ data
def ragged_pairs(n: int, *, vocab: int = 50_000, min_len: int = 5, max_len: int = 40, n_topics: int = 50,
                 seed: int = 0):
    """Generated pairs with ragged lengths and a planted rule a dual encoder can learn.

    Each topic owns a block of ``vocab // n_topics`` token ids; ``in0`` is drawn
    from topic ``a`` and ``in1`` from topic ``b``, and the label is ``a == b``
    (half of the pairs). Lengths are uniform in ``[min_len, max_len]``.

    Returns
    -------
    records : list of dict
        ``{"in0": [...], "in1": [...]}``.
    y : ndarray of int64
    """
    rng = np.random.default_rng(seed)
    block = vocab // n_topics
    a = rng.integers(0, n_topics, n)
    same = rng.random(n) < 0.5
    b = np.where(same, a, (a + rng.integers(1, n_topics, n)) % n_topics)

    def side(topics):
        lengths = rng.integers(min_len, max_len + 1, n)
        owner = np.repeat(topics, lengths)
        tokens = owner * block + rng.integers(0, block, len(owner))
        return [chunk.tolist() for chunk in np.split(tokens, np.cumsum(lengths)[:-1])]

    in0, in1 = side(a), side(b)
    return [{"in0": x, "in1": z} for x, z in zip(in0, in1)], same.astype(np.int64)


def padded_tensors(records, max_len: int):
    """Pre-pad records once (the hand loop's and skorch's input): ``(ids0, lengths0, ids1, lengths1)``."""
    import torch

    out = []
    for field in ("in0", "in1"):
        lengths = np.array([min(len(r[field]), max_len) for r in records], dtype=np.int64)
        ids = np.zeros((len(records), max_len), dtype=np.int64)
        for i, r in enumerate(records):
            ids[i, :lengths[i]] = r[field][:max_len]
        out += [torch.from_numpy(ids), torch.from_numpy(lengths)]
    return tuple(out)


# ---------------------------------------------------------------- timing
def alternate(candidates: dict, repeats: int, *, log=print) -> dict:
    """Run the candidates A B C A B C ... ``repeats`` times and keep each one's best.

    Each candidate is a callable returning the seconds it measured (so that set-up
    it should not be charged for stays outside its timer). Alternating makes the
    ratios hold on a shared, noisy machine: a slow spell hits every side.
    """
    best = {name: float("inf") for name in candidates}
    for rep in range(repeats):
        for name, run in candidates.items():
            seconds = run()
            best[name] = min(best[name], seconds)
            log(f"  [{rep + 1}/{repeats}] {name}: {seconds:.2f} s")
    return best


def timed(function, *args, **kwargs) -> float:
    started = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - started


# ----------------------------------------------------------------- output
def rss_kib(field: str) -> int:
    """A memory figure of this process from ``/proc/self/status`` in KiB: "VmRSS" now, "VmHWM" its peak
    (reset to the current RSS by writing "5" to ``/proc/self/clear_refs``)."""
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def format_table(headers, rows) -> str:
    """A reStructuredText simple table (readable in a terminal, valid in the docs)."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    rule = "  ".join("=" * w for w in widths)

    def line(row):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return "\n".join([rule, line(cells[0]), rule, *(line(r) for r in cells[1:]), rule])


def _cell(value) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 0.01 else f"{value:.2f}" \
            if abs(value) >= 10 else f"{value:.3f}"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    return str(value)


def machine() -> dict:
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_name(),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine_line() -> str:
    m = machine()
    return (f"machine: {m['processor']}, {m['cpu_count']} CPU cores, torch {m['torch']} with "
            f"{m['torch_threads']} threads, Python {m['python']}")


def write_results(name: str, payload: dict) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
    print(f"results written to {path}")
    return path


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def report(title: str, table: str, notes=()) -> None:
    """Print a titled table the way the docs quote it."""
    print(f"\n{title}\n{'-' * len(title)}\n")
    print(table)
    for note in notes:
        print(note)
    print()


# ------------------------------------------------------------------- tuning
def tune_on_validation(estimator, grid, X_train, y_train, X_val, y_val, scoring):
    """GridSearchCV over the one predefined split train -> validation.

    Each candidate trains on the training records, early-stops on the validation
    records (``X_val``/``y_val`` fit parameters) and is scored on them, the usual
    protocol for data sets shipped with a dev split. ``refit=False``: the caller
    refits the best candidate with early stopping, which a refit on train +
    validation could not do.
    """
    from sklearn.model_selection import GridSearchCV, PredefinedSplit

    X = list(X_train) + list(X_val)
    y = np.concatenate([np.asarray(y_train), np.asarray(y_val)])
    folds = np.r_[np.full(len(X_train), -1), np.zeros(len(X_val), dtype=int)]
    search = GridSearchCV(estimator, grid, scoring=scoring, cv=PredefinedSplit(folds), refit=False)
    search.fit(X, y, X_val=X_val, y_val=y_val)
    return search


def search_table(search, score_name: str) -> str:
    """Every candidate of a finished search with its validation score, best first."""
    results = search.cv_results_
    order = np.argsort(results["rank_test_score"], kind="stable")
    names = sorted(results["params"][0])
    rows = [[*(_short(results["params"][i][n]) for n in names), float(results["mean_test_score"][i])] for i in order]
    return format_table([*names, score_name], rows)


def _short(value):
    return value if not isinstance(value, float) else f"{value:g}"


def short_params(estimator, keys) -> str:
    params = estimator.get_params()
    return ", ".join(f"{k}={params[k]}" for k in keys)
