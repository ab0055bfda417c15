"""Token-table export: each embedding table with its ids, optionally in partitions,
for tools that hold tables too large for one host (PyTorch-BigGraph-style)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .artifact import load

__all__ = ["export_token_tables"]


def export_token_tables(estimator, path, *, n_partitions: int = 1, fmt: str = "npy") -> list[Path]:
    """Write each token embedding table with its ids, split into ``n_partitions`` by ``id % n_partitions``.

    For each side ``i`` (one table when ``tied_token_embedding_weight``) and partition
    ``k``: ``enc{i}.part{k}.ids.npy`` (int64) and ``enc{i}.part{k}.vectors.npy``
    (float32, one row per id), or one ``enc{i}.part{k}.tsv`` of ``id<TAB>v1<TAB>v2...``
    lines. The last row of a table, id ``vocab_size``, is the unknown-token row.

    Parameters
    ----------
    estimator : fitted estimator, or the path of a saved artifact
    path : str or Path
        Output folder (created).

    Returns
    -------
    list of Path
        The files written.
    """
    if isinstance(estimator, (str, os.PathLike)):
        estimator = load(estimator, device="cpu")
    if fmt not in ("npy", "tsv"):
        raise ValueError(f"fmt must be 'npy' or 'tsv', got {fmt!r}.")
    if int(n_partitions) < 1:
        raise ValueError(f"n_partitions must be >= 1, got {n_partitions!r}.")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    sides = (0,) if estimator.net_.config["tied"] else (0, 1)
    written = []
    for side in sides:
        table = estimator.net_.token_table(side).weight.detach().cpu().to(torch.float32).numpy()
        ids = np.arange(len(table), dtype=np.int64)
        for k in range(int(n_partitions)):
            part = ids[ids % n_partitions == k]
            stem = out / f"enc{side}.part{k}"
            if fmt == "npy":
                np.save(f"{stem}.ids.npy", part)
                np.save(f"{stem}.vectors.npy", table[part])
                written += [Path(f"{stem}.ids.npy"), Path(f"{stem}.vectors.npy")]
            else:
                np.savetxt(f"{stem}.tsv", np.column_stack([part, table[part]]), delimiter="\t",
                           fmt=["%d"] + ["%.8g"] * table.shape[1])
                written.append(Path(f"{stem}.tsv"))
    return written
