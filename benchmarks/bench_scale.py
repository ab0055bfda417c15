"""Scale-out benchmark: data-parallel throughput and streaming memory.

1. pairs/s of one epoch with 1 and with 2 torchrun processes (gloo, CPU, one
   torch thread per process) on the same file, alternating 1 2 1 2 and keeping
   each side's best;
2. peak RSS of a process that streams (pre-pass + one training epoch) a small
   and a 10x larger file: the target is growth below 20%, i.e. memory does not
   follow the file size.

Files are generated into a temporary folder. ``--quick`` (default) uses 20,000
records for throughput and 20,000 vs 200,000 records for memory (about 2
minutes on 2 cores); ``--full`` uses 200,000 and 200,000 vs 2,000,000. Counts can
also be set with the flags. Prints a table and writes ``benchmarks/results/scale.json``.

    python benchmarks/bench_scale.py            # quick
    python benchmarks/bench_scale.py --full
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import alternate, format_table, machine_line, report, write_results

#: A small model so that reading and batching, not arithmetic, dominate.
MODEL = dict(enc_dim=32, enc0_network="pooled_embedding", mlp_dim=64, mlp_layers=1, mini_batch_size=256,
             learning_rate=0.01, epochs=1, random_state=0, device="cpu", verbose=0)


def generate(path: Path, n: int, seed: int = 0, block: int = 50_000) -> Path:
    """``n`` topic pairs (label 1 iff both sides come from one topic), written block by block."""
    from skobject2vec.data.jsonlines import dumps

    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, n, block):
            m = min(block, n - start)
            t0, t1 = rng.integers(0, 8, m), rng.integers(0, 8, m)
            lengths = rng.integers(2, 10, (m, 2))
            tokens = rng.integers(0, 50, (m, 2, 9))
            lines = []
            for i in range(m):
                lines.append(dumps({"label": int(t0[i] == t1[i]),
                                    "in0": (t0[i] * 50 + tokens[i, 0, :lengths[i, 0]]).tolist(),
                                    "in1": (t1[i] * 50 + tokens[i, 1, :lengths[i, 1]]).tolist()}))
            handle.write("\n".join(lines) + "\n")
    return path


def child(path: str) -> None:
    """Stream-train on ``path`` once; rank 0 prints one JSON line of measurements."""
    import torch

    from skobject2vec import Object2VecClassifier
    from skobject2vec.parallel import fit_stream, is_main_process

    torch.set_num_threads(1)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = fit_stream(Object2VecClassifier(**MODEL), path)
    seconds = sum(h["seconds"] for h in model.history_)
    if is_main_process():
        print(json.dumps({"records": model.n_records_, "epoch_seconds": seconds,
                          "pairs_per_s": model.n_records_ / seconds,
                          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                          "rss_after_imports_mb": baseline}), flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_child(path: Path, nproc: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if nproc == 1:
        command = [sys.executable, __file__, "--child", str(path)]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                   "--master_addr=127.0.0.1", f"--master_port={_free_port()}", __file__, "--child", str(path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="the default: 20k records, 20k vs 200k for memory")
    size.add_argument("--full", action="store_true", help="200k records for throughput, 200k vs 2M for memory")
    parser.add_argument("--throughput-records", type=int)
    parser.add_argument("--memory-records", type=int, nargs=2, metavar=("SMALL", "LARGE"))
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per side (best kept)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return {}
    n_throughput = args.throughput_records or (200_000 if args.full else 20_000)
    n_small, n_large = args.memory_records or ((200_000, 2_000_000) if args.full else (20_000, 200_000))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        train = generate(tmp / "throughput.jsonl", n_throughput, seed=1)
        # alternate 1 2 1 2 (both sides see the same machine load), best epoch time of each
        best = alternate({nproc: lambda nproc=nproc: run_child(train, nproc)["epoch_seconds"]
                          for nproc in (1, 2)}, args.repeats)
        pairs_per_s = {nproc: n_throughput / seconds for nproc, seconds in best.items()}
        memory = {}
        for n in (n_small, n_large):
            path = generate(tmp / f"memory-{n}.jsonl", n, seed=2)
            memory[n] = dict(run_child(path, 1), file_mb=path.stat().st_size / 2 ** 20)
            path.unlink()
        total = time.perf_counter() - started
    growth = memory[n_large]["peak_rss_mb"] / memory[n_small]["peak_rss_mb"] - 1
    speedup = pairs_per_s[2] / pairs_per_s[1]
    payload = {
        "mode": "full" if args.full else "quick",
        "load_average": os.getloadavg(),
        "model": MODEL,
        "throughput": {"records": n_throughput, "repeats": args.repeats,
                       "pairs_per_s": {str(k): v for k, v in pairs_per_s.items()}, "speedup_2_vs_1": speedup},
        "memory": {str(n): m for n, m in memory.items()},
        "peak_rss_growth": growth,
        "peak_rss_target": "< 20% growth for 10x the records",
        "seconds": total,
    }
    print(machine_line())
    report(f"Data-parallel throughput: {n_throughput:,} records, 1 epoch, gloo on CPU, 1 torch thread per process",
           format_table(["processes", "pairs/s"], [[k, v] for k, v in pairs_per_s.items()]),
           [f"speed-up 2 vs 1: {speedup:.2f}x (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"])
    report("Streaming memory: pre-pass + 1 epoch, shuffle buffer 10,000 records",
           format_table(["records", "file MB", "peak RSS MB", "RSS after imports MB", "epoch s"],
                        [[n, m["file_mb"], m["peak_rss_mb"], m["rss_after_imports_mb"], m["epoch_seconds"]]
                         for n, m in memory.items()]),
           [f"peak RSS growth {n_small:,} -> {n_large:,} records: {growth:+.1%} (target < 20%)"])
    write_results("scale", payload)
    return payload


if __name__ == "__main__":
    main()
