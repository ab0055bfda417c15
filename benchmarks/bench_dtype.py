"""Dtype and threads: float32 vs float64, 1 vs all torch threads, for training and inference.

Each setting fits the same classifier for one epoch and predicts the same records;
settings alternate and each keeps its best time. The last column is the exactness
scikit-learn's checks care about: the largest difference between a record's
probabilities predicted inside the whole set and predicted alone with a few
others (a different batch composition).

    python benchmarks/bench_dtype.py            # 50,000 pairs, hcnn and bilstm
    python benchmarks/bench_dtype.py --quick    # 10,000 pairs, hcnn
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from _common import alternate, format_table, machine_line, ragged_pairs, report, timed, write_results

VOCAB, MIN_LEN, MAX_LEN = 50_000, 5, 40
#: Pinned to the network measured before the 0.2 defaults (two encoders, linear MLP, no dropout,
#: no hold-out), so that figures compare across versions.
PARAMS = dict(enc_dim=64, enc0_token_embedding_dim=64, enc0_vocab_size=VOCAB, enc0_max_seq_len=MAX_LEN,
              mlp_layers=2, mlp_dim=256, mini_batch_size=256, learning_rate=0.001, epochs=1, random_state=0,
              shared_encoder=False, mlp_activation="linear", dropout=0.0, validation_fraction=None)
LAYERS = {"pooled_embedding": "auto", "hcnn": 2, "bilstm": 1}


def run(network, dtype, threads, records, y, fitted):
    import torch

    from skobject2vec import Object2VecClassifier

    def fit():
        torch.set_num_threads(threads)
        estimator = Object2VecClassifier(**PARAMS, enc0_network=network, enc0_layers=LAYERS[network], dtype=dtype)
        seconds = timed(estimator.fit, records, y)
        fitted[(dtype, threads)] = estimator
        return seconds

    def predict():
        torch.set_num_threads(threads)
        return timed(fitted[(dtype, threads)].predict_proba, records)

    return fit, predict


def batch_dependence(estimator, records, k: int = 50) -> float:
    """Largest change of a probability when a record is predicted among other records."""
    whole = estimator.predict_proba(records)[:k]
    alone = np.vstack([estimator.predict_proba(records[i:i + 1]) for i in range(k)])
    return float(np.abs(whole - alone).max())


def main(argv=None):
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--networks", nargs="+", default=["hcnn", "bilstm"], choices=list(LAYERS))
    parser.add_argument("--quick", action="store_true", help="10,000 pairs, hcnn only")
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.networks = 10_000, ["hcnn"]

    all_threads = torch.get_num_threads()
    thread_counts = sorted({1, all_threads})
    records, y = ragged_pairs(args.pairs, vocab=VOCAB, min_len=MIN_LEN, max_len=MAX_LEN)
    rows, results = [], {}
    for network in args.networks:
        print(f"{network}:")
        fitted, fits, predicts = {}, {}, {}
        for dtype in ("float32", "float64"):
            for threads in thread_counts:
                fits[(dtype, threads)], predicts[(dtype, threads)] = run(network, dtype, threads, records, y, fitted)
        label = {key: f"{key[0]}, {key[1]} thread{'s' if key[1] > 1 else ''}" for key in fits}
        fit_best = alternate({label[k]: f for k, f in fits.items()}, args.repeats)
        predict_best = alternate({label[k]: f for k, f in predicts.items()}, args.repeats)
        torch.set_num_threads(all_threads)
        base = label[("float32", all_threads)]
        for key in fits:
            name = label[key]
            drift = batch_dependence(fitted[key], records)
            rows.append([network, name, args.pairs / fit_best[name], fit_best[base] / fit_best[name],
                         args.pairs / predict_best[name], predict_best[base] / predict_best[name], drift])
            results.setdefault(network, {})[name] = {
                "fit_seconds": fit_best[name], "predict_seconds": predict_best[name], "batch_dependence": drift}
    table = format_table(["network", "setting", "fit pairs/s", "fit speed vs float32", "predict records/s",
                          "predict speed vs float32", "max batch effect"], rows)
    report(f"Dtype and threads, {args.pairs:,} pairs (best of {args.repeats}, alternating)", table, [
        machine_line() + f"; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
        "speed columns are relative to float32 with all threads; max batch effect: largest change of a "
        "predicted probability between predicting a record within all records and alone",
    ])
    write_results("dtype", {"args": vars(args), "params": PARAMS, "results": results, "table": table})


if __name__ == "__main__":
    main()
