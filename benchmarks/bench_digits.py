"""Digit pairs (the demo): are two of scikit-learn's handwritten digits the same digit?

Pairs from ``skobject2vec.datasets.load_digit_pairs`` (train and test pairs use
disjoint images; half the pairs are same-digit pairs); each image is a sequence of
pixel tokens (position x intensity level). Baselines of the same run: the
majority class and logistic regression on ``|x0 - x1|`` of the quantised pixel
intensities (64 features). Then Object2VecClassifier with its defaults
(``random_state=0``) and the RECIPES. Reported: test accuracy and ROC AUC.

    python benchmarks/bench_digits.py              # 20,000 training pairs
    python benchmarks/bench_digits.py --quick      # 5,000 training pairs
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import format_table, machine_line, report, write_results

DEFAULTS = dict(random_state=0)
#: The demo's settings (examples/demo.py).
RECIPES = {
    "pooled, tied, relu MLP (the former demo recipe)": dict(
        enc0_network="pooled_embedding", enc_dim=64, tied_token_embedding_weight=True, shared_encoder=False,
        comparator_list="hadamard, abs_diff", mlp_layers=1, mlp_dim=128, mlp_activation="relu", dropout=0.0,
        epochs=15, mini_batch_size=64, optimizer="adam", learning_rate=0.003, validation_fraction=0.1,
        random_state=0),
}
LEVELS = 4  # digit_tokens: token = position * 4 + level


def pixels(tokens) -> np.ndarray:
    """Quantised intensities (64 per image) back from pixel tokens."""
    out = np.zeros((len(tokens), 64))
    for row, seq in zip(out, tokens):
        seq = np.asarray(seq, dtype=np.int64)
        row[seq // LEVELS] = seq % LEVELS
    return out


def abs_diff_features(X) -> np.ndarray:
    return np.abs(pixels([r["in0"] for r in X]) - pixels([r["in1"] for r in X]))


def main(argv=None):
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from skobject2vec import Object2VecClassifier
    from skobject2vec.datasets import load_digit_pairs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="5,000 training pairs")
    parser.add_argument("--pairs", type=int, default=20_000, help="training pairs")
    parser.add_argument("--epochs", type=int, default=None, help="cap the epochs of every model")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--name", default="digits", help="name of the JSON results file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    n_pairs = 5_000 if args.quick else args.pairs
    X_train, y_train, X_test, y_test, _ = load_digit_pairs(n_pairs=n_pairs, random_state=0)
    print(f"{len(X_train)} train, {len(X_test)} test pairs", flush=True)

    results = {}
    majority = int(np.bincount(y_train).argmax())
    results["majority class"] = {"accuracy": float(np.mean(y_test == majority)), "auc": 0.5, "seconds": 0.0,
                                 "epochs": 0}
    started = time.perf_counter()
    lr = LogisticRegression(max_iter=2000).fit(abs_diff_features(X_train), y_train)
    seconds = time.perf_counter() - started
    scores = lr.predict_proba(abs_diff_features(X_test))[:, 1]
    results["logistic regression on |x0 - x1|"] = {"accuracy": float(np.mean((scores > 0.5) == y_test)),
                                                   "auc": float(roc_auc_score(y_test, scores)), "seconds": seconds,
                                                   "epochs": 0}
    for label, params in [("Object2VecClassifier, defaults", DEFAULTS), *RECIPES.items()]:
        params = dict(params) if args.epochs is None else dict(params, epochs=args.epochs)
        started = time.perf_counter()
        model = Object2VecClassifier(**params).fit(X_train, y_train)
        seconds = time.perf_counter() - started
        scores = model.predict_proba(X_test)[:, list(model.classes_).index(1)]
        results[label] = {"accuracy": float(model.score(X_test, y_test)), "auc": float(roc_auc_score(y_test, scores)),
                          "seconds": seconds, "epochs": model.n_epochs_}
        print(f"  {label}: {results[label]}", flush=True)
    rows = [[k, r["accuracy"], r["auc"], r["epochs"], r["seconds"]] for k, r in results.items()]
    table = format_table(["model", "test accuracy", "test ROC AUC", "epochs", "fit s"], rows)
    report(f"Digit pairs: same digit? ({len(X_train):,} training pairs)", table, [
        machine_line(),
        "defaults: Object2VecClassifier(random_state=0)" + (f", epochs={args.epochs}" if args.epochs else ""),
        *(f"{n}: " + ", ".join(f"{k}={v}" for k, v in p.items()) for n, p in RECIPES.items()),
    ])
    write_results(args.name, {"args": vars(args), "recipes": RECIPES, "results": results, "table": table})
    return results


if __name__ == "__main__":
    main()
