"""What a fit's cost follows: its data, not the vocabulary size nor the other processes.

Three tables, every figure beside a baseline measured in the same run (runs alternate
A B A B, each keeps its best; every run is a fresh subprocess, so peak RSS is its own):

1. **Vocabulary sweep**: one default epoch (``Object2VecRegressor(random_state=0,
   epochs=1, validation_fraction=None)``) of 100,000 uniform random (user, item) ratings
   over 2,000 / 30,000 / 150,000 ids, with the defaults (sparse rows) and with
   ``token_embedding_storage_type="dense"``; beside (a) a plain torch loop of the same
   network (two ``nn.EmbeddingBag`` tables with sparse gradients, SparseAdam for them,
   Adam for the output layer, the same batch size (the ratings recipe's, 1,024 here), dropout and
   comparator) and (b) the
   ``nn.EmbeddingBag`` lookup rate alone (forward, both tables). The dense column's epoch
   has 20,000 records (minutes otherwise at 150,000 ids); records/s is per step all the same.
2. **Recommender scale**: Zipf-popular ratings over 138,000 users x 27,000 items (ML-20M's
   shape) at 1M records (``--full``: also 5M; ``--huge``: also 20M): records/s of the
   epoch, time from ``fit`` to the end of the first epoch, peak RSS; the defaults in memory
   (a 2-column integer array) and streamed from a JSON Lines file of the same ratings
   (``fit(path)``: its time includes the pre-pass; its peak RSS is counted once the file is
   written and the arrays freed).
3. **Contention**: a default 3-epoch fit of 80,000 ratings alone, beside one busy
   single-threaded process, and two started together; with ``n_threads="auto"`` (the
   default) and with ``n_threads=None`` (torch's own threads, the behaviour before).

All runs use torch's own thread setting except where ``n_threads`` says otherwise.

    python benchmarks/bench_fit_cost.py            # tables 1-3, about 6 minutes on 2 cores
    python benchmarks/bench_fit_cost.py --full     # + 5M records
    python benchmarks/bench_fit_cost.py --tables 3 # one table

Writes ``benchmarks/results/fit_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
from _common import format_table, machine_line, report, rss_kib, write_results


# ------------------------------------------------------------------ one measurement (subprocess)
def ratings(n: int, users: int, items: int, zipf: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    if zipf:  # popularity ~ 1 / rank: a few users and items hold most ratings, as in MovieLens
        def draw(k):
            p = 1.0 / np.arange(1, k + 1)
            return rng.permutation(k)[rng.choice(k, n, p=p / p.sum())]
        X = np.column_stack([draw(users), users + draw(items)])
    else:
        X = np.column_stack([rng.integers(0, users, n), users + rng.integers(0, items, n)])
    return X.astype(np.int64), rng.normal(3.5, 1.0, n)


def run_ours(X, y, params):
    from skobject2vec import Object2VecRegressor

    started = time.perf_counter()
    model = Object2VecRegressor(**{"random_state": 0, "epochs": 1, "validation_fraction": None, **params}).fit(X, y)
    return {"first_epoch_s": time.perf_counter() - started, "epoch_s": model.history_[0]["seconds"],
            "total_s": time.perf_counter() - started}


def run_streamed(spec: dict, block: int = 100_000):
    """The defaults on the same ratings streamed from a JSON Lines file (``fit(path)``): the file is written
    first (not timed), the arrays freed (drawn here, so that no caller holds them), and the peak RSS counted
    from there (the kernel's VmHWM, reset)."""
    import gc
    import tempfile
    from pathlib import Path

    from skobject2vec import Object2VecRegressor

    X, y = ratings(spec["n"], spec["users"], spec["items"], spec["zipf"])
    params = spec.get("params", {})
    folder = tempfile.TemporaryDirectory()
    path = Path(folder.name) / "ratings.jsonl"
    with open(path, "w") as handle:
        for start in range(0, len(y), block):
            rows = zip(X[start:start + block, 0].tolist(), X[start:start + block, 1].tolist(),
                       y[start:start + block].tolist())
            handle.write("".join(f'{{"in0": [{u}], "in1": [{i}], "label": {r!r}}}\n' for u, i, r in rows))
    del X, y
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM (the peak RSS) to the current RSS
    started = time.perf_counter()
    model = Object2VecRegressor(**{"random_state": 0, "epochs": 1, "validation_fraction": None, **params}).fit(
        str(path))
    done = time.perf_counter()
    folder.cleanup()
    return {"first_epoch_s": done - started, "epoch_s": model.history_[0]["seconds"], "total_s": done - started,
            "peak_rss_mb": rss_kib("VmHWM") / 1024}


def _plain_net(vocab: int, dim: int = 128, dropout: float = 0.3):
    import torch
    from torch import nn

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.t0 = nn.EmbeddingBag(vocab, dim, mode="mean", sparse=True)
            self.t1 = nn.EmbeddingBag(vocab, dim, mode="mean", sparse=True)
            self.drop = nn.Dropout(dropout)
            self.out = nn.Linear(4 * dim, 1)

        def forward(self, a, b):
            e0, e1 = self.t0(a), self.t1(b)
            return self.out(self.drop(torch.cat([e0 * e1, e0, e1, (e0 - e1).abs()], 1))).squeeze(1)

    return Plain()


def run_plain(X, y, batch: int = 256):
    """The same pooled network in a hand-written loop: EmbeddingBag + SparseAdam."""
    import torch

    torch.manual_seed(0)
    started = time.perf_counter()
    net = _plain_net(int(X.max()) + 1)
    tables = [net.t0.weight, net.t1.weight]
    sparse_opt = torch.optim.SparseAdam(tables, lr=0.001)
    dense_opt = torch.optim.Adam(net.out.parameters(), lr=0.001)
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y).float()
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(y)))
    epoch = time.perf_counter()
    for i in range(0, len(y), batch):
        index = order[i:i + batch]
        sparse_opt.zero_grad()
        dense_opt.zero_grad()
        rows = X_t[index]
        loss = ((net(rows[:, :1], rows[:, 1:]) - y_t[index]) ** 2).mean()
        loss.backward()
        sparse_opt.step()
        dense_opt.step()
    done = time.perf_counter()
    return {"first_epoch_s": done - started, "epoch_s": done - epoch}


def run_lookup(X, y, batch: int = 256):
    """The EmbeddingBag lookup rate alone: forward passes of both tables over the same batches."""
    import torch

    net = _plain_net(int(X.max()) + 1)
    X_t = torch.from_numpy(X)
    started = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(y), batch):
            rows = X_t[i:i + batch]
            net.t0(rows[:, :1]), net.t1(rows[:, 1:])
    seconds = time.perf_counter() - started
    return {"first_epoch_s": seconds, "epoch_s": seconds}


def one(spec: dict) -> dict:
    kind = spec["kind"]
    if kind == "streamed":
        result = run_streamed(spec)
    else:
        X, y = ratings(spec["n"], spec["users"], spec["items"], spec["zipf"])
        batch = spec.get("batch", 256)
        result = (run_ours(X, y, spec.get("params", {})) if kind == "ours"
                  else run_plain(X, y, batch) if kind == "plain" else run_lookup(X, y, batch))
    result["records_per_s"] = spec["n"] / result["epoch_s"]
    result.setdefault("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


# ------------------------------------------------------------------ driver
def spawn(spec: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--one", json.dumps(spec)], stdout=subprocess.PIPE, text=True)


def measure(spec: dict) -> dict:
    out, _ = spawn(spec).communicate()
    return json.loads(out.strip().splitlines()[-1])


def defaults_batch(n: int) -> int:
    """The batch the defaults train these ratings with (one id per side and no hold-out: the Adagrad
    recipe's large batch), which the plain loop and the lookup runs use too."""
    from skobject2vec._auto import auto_batch_size

    return auto_batch_size(n, large=True)


def best_of(specs: dict, repeats: int) -> dict:
    """A B A B: each spec run ``repeats`` times in turn; keep each one's fastest epoch."""
    best: dict = {}
    for _ in range(repeats):
        for name, spec in specs.items():
            result = measure(spec)
            if name not in best or result["epoch_s"] < best[name]["epoch_s"]:
                best[name] = result
    return best


def vocabulary_sweep(repeats: int) -> tuple[str, dict]:
    rows, results = [], {}
    for ids in (2_000, 30_000, 150_000):
        base = dict(n=100_000, users=ids // 2, items=ids // 2, zipf=False)
        best = best_of({"defaults": dict(base, kind="ours"),
                        # fewer records: a dense epoch at 150,000 ids takes minutes; the rate is per step
                        "dense": dict(base, n=20_000, kind="ours",
                                      params={"token_embedding_storage_type": "dense", "mini_batch_size": 256}),
                        "plain": dict(base, kind="plain", batch=defaults_batch(base["n"])),
                        "lookup": dict(base, kind="lookup", batch=defaults_batch(base["n"]))}, repeats)
        results[ids] = best
        rows.append([f"{ids:,}"] + [f"{best[k]['records_per_s']:,.0f}" for k in ("defaults", "dense", "plain",
                                                                                   "lookup")]
                    + [f"{best['defaults']['records_per_s'] / best['plain']['records_per_s']:.2f}"])
    ratio = results[150_000]["defaults"]["records_per_s"] / results[2_000]["defaults"]["records_per_s"]
    table = format_table(["ids", "defaults rec/s", "dense rec/s", "plain loop rec/s", "lookup rec/s",
                          "defaults / plain"], rows)
    return table + f"\ndefaults at 150,000 ids / at 2,000 ids: {ratio:.2f} (target >= 0.6)", results


def recommender_scale(sizes, repeats: int) -> tuple[str, dict]:
    rows, results = [], {}
    for n in sizes:
        base = dict(n=n, users=138_000, items=27_000, zipf=True)
        best = best_of({"defaults": dict(base, kind="ours"), "streamed": dict(base, kind="streamed"),
                        "plain": dict(base, kind="plain", batch=defaults_batch(n)),
                        "lookup": dict(base, kind="lookup", batch=defaults_batch(n))}, repeats)
        results[n] = best
        for name in ("defaults", "streamed", "plain", "lookup"):
            r = best[name]
            rows.append([f"{n:,}", name, f"{r['records_per_s']:,.0f}", f"{r['first_epoch_s']:.1f}",
                         f"{r['peak_rss_mb']:,.0f}"])
    return format_table(["records", "run", "records/s", "s to 1st epoch end", "peak RSS MB"], rows), results


def contention(repeats: int) -> tuple[str, dict]:
    base = dict(n=80_000, users=1_000, items=1_700, zipf=True, kind="ours")
    rows, results = [], {}
    for label, n_threads in (("auto (default)", "auto"), ("None (torch's threads)", None)):
        spec = dict(base, params={"epochs": 3, "n_threads": n_threads})
        alone, beside, pair = [], [], []
        for _ in range(repeats):
            alone.append(measure(spec)["total_s"])
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            try:
                time.sleep(0.5)
                beside.append(measure(spec)["total_s"])
            finally:
                busy.kill()
            started = [spawn(spec), spawn(spec)]
            pair.append(max(json.loads(p.communicate()[0].strip().splitlines()[-1])["total_s"]
                            for p in started))
        a, b, p = min(alone), min(beside), min(pair)
        results[label] = {"alone_s": a, "beside_busy_s": b, "two_at_once_s": p}
        rows.append([label, f"{a:.1f}", f"{b:.1f}", f"{b / a:.2f}", f"{p:.1f}", f"{p / a:.2f}"])
    table = format_table(["n_threads", "alone s", "beside busy s", "ratio (<= 1.5)", "two at once s (each)",
                          "ratio (<= 2.0)"], rows)
    return table, results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help="also 5M records in table 2")
    parser.add_argument("--huge", action="store_true", help="also 20M records in table 2 (minutes, ~GBs)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tables", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return
    print(machine_line())
    payload = {}
    if 1 in args.tables:
        table, payload["vocabulary"] = vocabulary_sweep(args.repeats)
        report("One default epoch of 100,000 ratings by vocabulary size", table)
    if 2 in args.tables:
        sizes = [1_000_000] + ([5_000_000] if args.full or args.huge else []) + ([20_000_000] if args.huge else [])
        table, payload["scale"] = recommender_scale(sizes, 1 if args.huge else args.repeats)
        report("Zipf ratings over 138,000 users x 27,000 items", table)
    if 3 in args.tables:
        table, payload["contention"] = contention(args.repeats)
        report("A default fit (80,000 ratings, 3 epochs) next to other work", table)
    write_results("fit_cost", payload)


if __name__ == "__main__":
    main()
