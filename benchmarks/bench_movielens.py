"""MovieLens 100K: (user id, item id) -> rating with Object2VecRegressor.

MovieLens' license forbids redistribution, so pass the folder of an ml-100k you
downloaded from GroupLens. Trains on ``ua.base`` and reports RMSE on ``ua.test``,
then the same for the five folds u1-u5 (mean and spread). Early stopping uses a
10 % slice of each training file. Reference points: SageMaker's published example
about 0.95 on ua.test; biased matrix factorisation about 0.93-0.96.

    python benchmarks/bench_movielens.py PATH/TO/ml-100k
    python benchmarks/bench_movielens.py PATH/TO/ml-100k --quick    # ua only, 5 epochs
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _common import format_table, machine_line, report, write_results

#: One token per side: the encoder is just the id's vector (pooled_embedding), so this
#: is a neural matrix factorisation with an MLP on top.
PARAMS = dict(enc0_network="pooled_embedding", enc_dim=64, mlp_layers=2, mlp_dim=256, mlp_activation="relu",
              dropout=0.2, mini_batch_size=256, learning_rate=0.001, epochs=50, early_stopping_patience=3,
              early_stopping_tolerance=0.001, validation_fraction=0.1, random_state=0)
SPLITS = ("ua", "u1", "u2", "u3", "u4", "u5")


def rmse(estimator, X, y) -> float:
    return float(np.sqrt(np.mean((np.clip(estimator.predict(X), 1, 5) - y) ** 2)))


def run_split(folder: Path, split: str, params: dict) -> dict:
    from skobject2vec import Object2VecRegressor
    from skobject2vec.datasets import load_movielens

    data = load_movielens(folder, split)
    model = Object2VecRegressor(**params).fit(data.X_train, data.y_train)
    out = {"split": split, "train": len(data.X_train), "test": len(data.X_test),
           "rmse": rmse(model, data.X_test, data.y_test), "epochs": model.n_epochs_,
           "global_mean_rmse": float(np.sqrt(np.mean((data.y_test - data.y_train.mean()) ** 2)))}
    print(f"{split}: RMSE {out['rmse']:.4f} after {out['epochs']} epochs")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="an ml-100k folder you downloaded (u1.base ... ua.test)")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--epochs", type=int, default=PARAMS["epochs"])
    parser.add_argument("--quick", action="store_true", help="ua only, at most 5 epochs")
    parser.add_argument("--name", default="movielens", help="name of the JSON results file")
    args = parser.parse_args(argv)
    params = dict(PARAMS, epochs=args.epochs)
    if args.quick:
        args.splits, params["epochs"] = ["ua"], min(args.epochs, 5)

    results = [run_split(Path(args.folder), split, params) for split in args.splits]
    rows = [[r["split"], r["train"], r["test"], r["global_mean_rmse"], r["rmse"], r["epochs"]] for r in results]
    folds = [r["rmse"] for r in results if r["split"].startswith("u") and r["split"][1:].isdigit()]
    if len(folds) > 1:
        rows.append([f"u1-u5 mean (std {np.std(folds):.3f})", "", "", "", float(np.mean(folds)), ""])
    rows += [["SageMaker example, ua (published)", "", "", "", 0.95, ""],
             ["biased MF (published range)", "", "", "", "0.93-0.96", ""]]
    table = format_table(["split", "train", "test", "global-mean RMSE", "RMSE", "epochs"], rows)
    report("MovieLens 100K: test RMSE of (user, item) -> rating", table, [
        machine_line(),
        "Object2VecRegressor(" + ", ".join(f"{k}={v}" for k, v in params.items()) + "); predictions clipped to 1-5",
    ])
    write_results(args.name, {"args": vars(args), "params": params, "results": results, "table": table})
    return results


if __name__ == "__main__":
    main()
