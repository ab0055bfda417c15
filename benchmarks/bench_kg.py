"""Knowledge graphs: (head, tail) -> relation as multi-class classification.

Nations, Kinships and UMLS as pykeen 1.11.1 bundles them (read from its wheel,
fetched once with ``pip download --no-deps``; see ``skobject2vec.datasets.load_kg``).
Each side is one entity id; both sides share the entity vocabulary. Reported:
test accuracy of the majority class (of the training relations), of the
classifier with its defaults (early stopping on the valid split), and of the
classifier tuned with GridSearchCV on the valid split.

    python benchmarks/bench_kg.py               # all three graphs, full grid
    python benchmarks/bench_kg.py --quick       # nations only, smaller grid
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import format_table, machine_line, report, search_table, tune_on_validation, write_results

GRAPHS = ("nations", "kinships", "umls")
DEFAULTS = dict(random_state=0)
QUICK_DEFAULTS = dict(random_state=0, epochs=10)
#: Tuned from: one entity per side, so the encoder hardly matters and pooled_embedding
#: (the entity's vector) is the natural choice; the grid then varies what does matter.
BASE = dict(enc0_network="pooled_embedding", random_state=0, early_stopping_patience=5, epochs=100)
GRID = {"enc_dim": [64, 256], "tied_token_embedding_weight": [False, True], "learning_rate": [0.004]}
QUICK_GRID = {"enc_dim": [64], "tied_token_embedding_weight": [True], "learning_rate": [0.004]}


def accuracy(estimator, X, y) -> float:
    return float(np.mean(estimator.predict(X) == y))


def true_relations(data) -> dict:
    """Every relation that holds for each (head, tail) pair, over all three splits."""
    truth = {}
    for X, y in ((data.X_train, data.y_train), (data.X_valid, data.y_valid), (data.X_test, data.y_test)):
        for record, relation in zip(X, y):
            truth.setdefault((record["in0"][0], record["in1"][0]), set()).add(relation)
    return truth


def filtered_accuracy(predicted, X, truth) -> float:
    """A prediction counts when it is *a* true relation of its pair (the usual filtered
    setting: a pair holding several relations cannot be right on all of its test rows)."""
    return float(np.mean([p in truth[(r["in0"][0], r["in1"][0])] for p, r in zip(predicted, X)]))


def run_graph(name: str, grid: dict, cache_dir, defaults: dict) -> dict:
    from sklearn.base import clone

    from skobject2vec import Object2VecClassifier
    from skobject2vec.datasets import load_kg

    data = load_kg(name, cache_dir=cache_dir)
    relations, counts = np.unique(data.y_train, return_counts=True)
    majority_relation = relations[np.argmax(counts)]
    majority = float(np.mean(data.y_test == majority_relation))
    truth = true_relations(data)
    majority_filtered = filtered_accuracy(np.full(len(data.y_test), majority_relation), data.X_test, truth)
    started = time.perf_counter()
    default = Object2VecClassifier(**defaults).fit(data.X_train, data.y_train, X_val=data.X_valid,
                                                  y_val=data.y_valid)
    default_seconds = time.perf_counter() - started
    search = tune_on_validation(Object2VecClassifier(**BASE), grid, data.X_train, data.y_train, data.X_valid,
                                data.y_valid, scoring="accuracy")
    tuned = clone(Object2VecClassifier(**BASE)).set_params(**search.best_params_)
    started = time.perf_counter()
    tuned.fit(data.X_train, data.y_train, X_val=data.X_valid, y_val=data.y_valid)
    tuned_seconds = time.perf_counter() - started
    out = {
        "entities": len(data.entities), "relations": len(data.relations),
        "train": len(data.X_train), "valid": len(data.X_valid), "test": len(data.X_test),
        "majority": majority, "majority_filtered": majority_filtered,
        "default": accuracy(default, data.X_test, data.y_test), "default_epochs": default.n_epochs_,
        "default_filtered": filtered_accuracy(default.predict(data.X_test), data.X_test, truth),
        "tuned_filtered": filtered_accuracy(tuned.predict(data.X_test), data.X_test, truth),
        "default_seconds": default_seconds,
        "tuned": accuracy(tuned, data.X_test, data.y_test), "tuned_epochs": tuned.n_epochs_,
        "tuned_seconds": tuned_seconds, "best_params": search.best_params_,
        "search_table": search_table(search, "valid accuracy"),
    }
    print(f"{name}: majority {majority:.3f}, default {out['default']:.3f}, tuned {out['tuned']:.3f} "
          f"({search.best_params_}); filtered: majority {majority_filtered:.3f}, default "
          f"{out['default_filtered']:.3f}, tuned {out['tuned_filtered']:.3f}")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", nargs="+", default=list(GRAPHS), choices=GRAPHS)
    parser.add_argument("--cache-dir", default=None, help="where the pykeen wheel is kept")
    parser.add_argument("--quick", action="store_true", help="nations only, one tuned candidate")
    args = parser.parse_args(argv)
    grid, defaults = GRID, DEFAULTS
    if args.quick:
        args.graphs, grid, defaults = ["nations"], QUICK_GRID, QUICK_DEFAULTS

    results = {name: run_graph(name, grid, args.cache_dir, defaults) for name in args.graphs}
    rows = [[name, r["entities"], r["relations"], f"{r['train']}/{r['valid']}/{r['test']}",
             f"{r['majority']:.3f} / {r['majority_filtered']:.3f}", f"{r['default']:.3f} / {r['default_filtered']:.3f}",
             f"{r['tuned']:.3f} / {r['tuned_filtered']:.3f}", ", ".join(f"{k}={v}" for k, v in r["best_params"].items())]
            for name, r in results.items()]
    table = format_table(["graph", "entities", "relations", "train/valid/test", "majority class",
                          "defaults", "tuned", "tuned parameters"], rows)
    report("Knowledge graphs: test accuracy / filtered accuracy of (head, tail) -> relation", table, [
        "accuracy: the predicted relation is the test row's; filtered: it is one of the relations that hold "
        "for the pair in any split (pairs often hold several relations, so plain accuracy is capped)",
        machine_line(),
        "defaults: Object2VecClassifier(" + ", ".join(f"{k}={v}" for k, v in defaults.items())
        + "), early stopping on valid",
        "tuned: " + ", ".join(f"{k}={v}" for k, v in BASE.items()) + "; GridSearchCV over "
        + ", ".join(f"{k} in {v}" for k, v in grid.items()) + " on the valid split",
    ])
    for name, r in results.items():
        report(f"{name}: grid search on the valid split", r["search_table"])
    write_results("kg", {"args": vars(args), "defaults": defaults, "base": BASE, "grid": grid, "results": results,
                         "table": table})


if __name__ == "__main__":
    main()
