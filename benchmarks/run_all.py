"""Run every benchmark script; ``make bench`` runs ``run_all.py --quick``.

Each script runs in its own process (its tables print as it finishes) and writes
``benchmarks/results/<name>.json``. MovieLens needs a folder you downloaded
(its license forbids bundling it): pass ``--movielens PATH``, otherwise it is
skipped with a note.

    python benchmarks/run_all.py --quick                        # under 10 minutes on 2 cores
    python benchmarks/run_all.py --movielens ~/data/ml-100k     # the full runs
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SCRIPTS = ("bench_training.py", "bench_inference.py", "bench_dtype.py", "bench_sts.py", "bench_kg.py",
           "bench_sparse.py", "bench_serving.py", "bench_scale.py")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick version of every script")
    parser.add_argument("--movielens", default=None, help="path of a user-downloaded ml-100k folder")
    parser.add_argument("--sts", default=None, help="STS Benchmark folder (default ../shared/data/stsbenchmark)")
    args = parser.parse_args(argv)
    extra = ["--quick"] if args.quick else []
    runs = []
    for script in SCRIPTS:
        command = [sys.executable, str(BENCH_DIR / script), *extra]
        if script == "bench_sts.py" and args.sts:
            command.insert(2, args.sts)
        runs.append(command)
    if args.movielens:
        runs.append([sys.executable, str(BENCH_DIR / "bench_movielens.py"), args.movielens, *extra])
    else:
        print("MovieLens 100K skipped: pass --movielens PATH/TO/ml-100k (a folder you downloaded from GroupLens; "
              "its license forbids bundling it).", flush=True)
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
