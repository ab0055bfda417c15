"""The comparator: joins the two encodings into one feature vector."""

from __future__ import annotations

import torch
from torch import nn

OPERATIONS = ("hadamard", "concat", "abs_diff")
_WIDTH = {"hadamard": 1, "concat": 2, "abs_diff": 1}


def parse_comparator_list(value: object) -> tuple[str, ...]:
    """Normalise SageMaker's ``"hadamard, concat, abs_diff"`` (or a tuple/list) to a tuple.

    Order is kept because it decides the layout of the comparator output.
    """
    if isinstance(value, str):
        items = [part.strip().lower() for part in value.split(",")]
    elif isinstance(value, (tuple, list)):
        items = [str(part).strip().lower() for part in value]
    else:
        raise ValueError(
            f"Invalid value for hyperparameter 'comparator_list': {value!r}; expected a string such as "
            f"'hadamard, concat, abs_diff' or a tuple of {OPERATIONS}."
        )
    items = [item for item in items if item]
    unknown = [item for item in items if item not in OPERATIONS]
    if not items or unknown:
        raise ValueError(
            f"Invalid value for hyperparameter 'comparator_list': {value!r}; "
            + (f"unknown operation(s) {unknown}; " if unknown else "it is empty; ")
            + f"expected a non-empty subset of {OPERATIONS}."
        )
    if len(set(items)) != len(items):
        raise ValueError(f"Invalid value for hyperparameter 'comparator_list': {value!r} repeats an operation.")
    return tuple(items)


class Comparator(nn.Module):
    """Concatenate ``hadamard`` (e0*e1), ``concat`` ([e0; e1]) and ``abs_diff`` (|e0-e1|) in order."""

    def __init__(self, operations: object, enc_dim: int) -> None:
        super().__init__()
        self.operations = parse_comparator_list(operations)
        self.out_dim = enc_dim * sum(_WIDTH[op] for op in self.operations)

    def forward(self, e0: torch.Tensor, e1: torch.Tensor) -> torch.Tensor:
        parts = []
        for op in self.operations:
            if op == "hadamard":
                parts.append(e0 * e1)
            elif op == "concat":
                parts.extend((e0, e1))
            else:
                parts.append((e0 - e1).abs())
        return torch.cat(parts, dim=-1)

    def extra_repr(self) -> str:
        return f"operations={self.operations}, out_dim={self.out_dim}"
