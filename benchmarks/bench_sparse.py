"""Seconds per training step: dense vs row_sparse token tables (SageMaker's
``token_embedding_storage_type``).

Setup (issue 4): vocabulary 1,000,000 x token dim 128 on each side,
pooled_embedding encoders, batch 256, the real :class:`Object2VecNet` and
:func:`skobject2vec.training.make_optimizers`, and the training loop's own step
(zero_grad, forward, weighted loss, backward, step). Both sides start from the
same weights and see the same batches, so their loss curves are comparable.
Sides alternate A B A B; each side keeps its best round (the lowest median step
time). Target: row_sparse >= 10x faster per step.

    python benchmarks/bench_sparse.py --quick      # < 1 minute
    python benchmarks/bench_sparse.py              # full: more steps and rounds
    python benchmarks/bench_sparse.py --optimizers adam,adagrad,sgd --steps 50

Writes ``benchmarks/results/sparse.json``. Runs on one torch thread by default
(``--threads``): see that flag's help for why.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from _common import format_table, machine_line, report, write_results

from skobject2vec import training
from skobject2vec.data.batching import Batcher, Ragged
from skobject2vec.nn.model import Object2VecNet


def make_batches(n_steps, batch, vocab, n_topics=16, seed=0):
    """Planted rule a dual encoder can learn: label 1 iff both sides come from one topic.

    Token ids are Zipf-distributed ranks spread over the whole vocabulary (topic t
    owns the ids congruent to t), so a few tokens recur and the tail is rare, as in text.
    """
    rng = np.random.default_rng(seed)
    n = n_steps * batch
    t0 = rng.integers(0, n_topics, n)
    same = rng.random(n) < 0.5
    t1 = np.where(same, t0, (t0 + rng.integers(1, n_topics, n)) % n_topics)
    max_rank = vocab // n_topics

    def side(topics):
        lengths = rng.integers(5, 21, n)
        ranks = np.minimum(rng.zipf(1.3, int(lengths.sum())), max_rank) - 1
        values = ranks * n_topics + np.repeat(topics, lengths)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return Ragged(values.astype(np.int64), offsets)

    return side(t0), side(t1), same.astype(np.int64)


def net_config(vocab, dim, sparse):
    return {
        "vocab_sizes": [vocab, vocab], "token_dims": [dim, dim], "networks": ["pooled_embedding"] * 2,
        "layers": [1, 1], "filter_widths": [3, 3], "enc_dim": dim,
        "comparator": ["hadamard", "concat", "abs_diff"], "mlp_layers": 2, "mlp_dim": 512,
        "mlp_activation": "linear", "dropout": 0.0, "n_outputs": 2, "tied": False, "sparse": sparse,
    }


def run_side(sparse, args, optimizer, data):
    """Train from a fixed initialisation; returns (step seconds after warm-up, losses)."""
    in0, in1, labels = data
    torch.manual_seed(0)
    net = Object2VecNet(net_config(args.vocab, args.dim, sparse)).train()
    optimizers = training.make_optimizers(net, optimizer, args.learning_rate, 0.0, sparse)
    batcher = Batcher((5000, 5000), (args.vocab, args.vocab), torch.device("cpu"))
    times, losses = [], []
    for step in range(args.warmup + args.steps):
        index = np.arange(step * args.batch, (step + 1) * args.batch)
        started = time.perf_counter()
        inputs = (*batcher.side(in0, index, 0), *batcher.side(in1, index, 1))
        target = torch.from_numpy(labels[index])
        for opt in optimizers:  # exactly training.train's step
            opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(*inputs), target)
        loss.backward()
        for opt in optimizers:
            opt.step()
        elapsed = time.perf_counter() - started
        losses.append(float(loss.detach()))
        if step >= args.warmup:
            times.append(elapsed)
    del net, optimizers
    return times, losses


def compare_curves(dense, sparse, window):
    """How far apart the two loss curves are, against the step-to-step noise."""
    dense, sparse = np.asarray(dense), np.asarray(sparse)
    noise = float(np.std(np.diff(dense)) / np.sqrt(2)) if len(dense) > 2 else float("nan")
    w = min(window, len(dense))
    return {
        "max_abs_diff": float(np.max(np.abs(dense - sparse))),
        "mean_abs_diff": float(np.mean(np.abs(dense - sparse))),
        "step_noise": noise,
        "dense_first_last": [float(dense[:w].mean()), float(dense[-w:].mean())],
        "sparse_first_last": [float(sparse[:w].mean()), float(sparse[-w:].mean())],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few steps and 2 rounds (under a minute)")
    parser.add_argument("--vocab", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="A B rounds; each side keeps its best")
    parser.add_argument("--optimizers", default="adam", help="comma list of adam, adagrad, sgd")
    parser.add_argument("--learning-rate", type=float, default=0.001)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for both sides (0: torch's default). 1 by default: on a shared "
                             "2-core machine two OpenMP threads stall the small sparse ops whenever another "
                             "process holds a core (row_sparse measured 0.02 s/step on 1 thread, 0.1-0.6 on 2)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.rounds = 3, 1, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Sparse invariant checks")  # torch's Adagrad, once per run
    data = make_batches(args.warmup + args.steps, args.batch, args.vocab)
    results = []
    for optimizer in args.optimizers.split(","):
        rounds = {"dense": [], "row_sparse": []}
        curves = {}
        for _ in range(args.rounds):
            for side in ("dense", "row_sparse"):  # A B A B
                times, losses = run_side(side == "row_sparse", args, optimizer, data)
                rounds[side].append(statistics.median(times))
                print(f"  {optimizer} {side}: {rounds[side][-1]:.4f} s/step (median of {len(times)})", flush=True)
                curves[side] = losses  # identical every round: same seed, same batches
        best = {side: min(medians) for side, medians in rounds.items()}
        results.append({
            "optimizer": optimizer,
            "seconds_per_step": best,
            "round_medians": rounds,
            "speedup": best["dense"] / best["row_sparse"],
            "loss_curves": curves,
            "loss_comparison": compare_curves(curves["dense"], curves["row_sparse"], window=max(2, args.steps // 5)),
        })
    print(machine_line())
    rows = []
    for r in results:
        c = r["loss_comparison"]
        rows.append([r["optimizer"], r["seconds_per_step"]["dense"], r["seconds_per_step"]["row_sparse"],
                     f"{r['speedup']:.1f}x", "met" if r["speedup"] >= 10 else "MISSED",
                     f"{c['dense_first_last'][0]:.4f} -> {c['dense_first_last'][1]:.4f}",
                     f"{c['sparse_first_last'][0]:.4f} -> {c['sparse_first_last'][1]:.4f}",
                     c["max_abs_diff"], c["step_noise"]])
    table = format_table(["optimizer", "dense s/step", "row_sparse s/step", "speedup", "target >= 10x",
                          "dense loss first -> last", "row_sparse loss first -> last", "max abs loss diff",
                          "step noise"], rows)
    report(f"Training step, vocabulary {args.vocab:,} x dim {args.dim}, pooled_embedding, batch {args.batch} "
           f"({args.steps} steps, best of {args.rounds} rounds A B)", table)
    write_results("sparse", {"target": "row_sparse >= 10x faster per step", "config": vars(args),
                             "results": results})
    return results


if __name__ == "__main__":
    main()
