"""Pretrained token vectors (GloVe/word2vec text) for the token tables.

:func:`load_pretrained_table` copies pretrained vectors into a token table,
placing each at the id a JSON vocabulary file gives its token (SageMaker's
``enc*_pretrained_embedding_file`` + ``enc*_vocab_file``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from ..data.jsonlines import open_text

__all__ = [
    "PretrainedInfo",
    "apply_pretrained_settings",
    "load_pretrained_table",
    "pretrained_info",
    "read_pretrained_vectors",
    "read_vocab_file",
]


# ------------------------------------------------------------ pretrained vectors
def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_vocab_file(vocab_file) -> dict[str, int]:
    """A JSON object token -> non-negative integer id (SageMaker's ``enc*_vocab_file``)."""
    name = str(vocab_file)
    try:
        with open_text(vocab_file) as handle:
            vocab = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name}:{exc.lineno}: invalid JSON in vocabulary file ({exc.msg}).") from None
    if not isinstance(vocab, dict):
        raise ValueError(f"{name}: a vocabulary file must hold a JSON object mapping token to id, "
                         f"got {type(vocab).__name__}.")
    for token, index in vocab.items():
        if type(index) is not int or index < 0:  # noqa: E721 - bool is not an id
            raise ValueError(f"{name}: token {token!r} maps to {index!r}; ids must be integers >= 0.")
    return vocab


def _header(parts) -> tuple[int, int] | None:
    """word2vec's optional first line ``count dim``."""
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _split_line(line: str, dim: int, where: str):
    """``(token, value strings)``; the last ``dim`` fields are the vector.

    A token may contain spaces (glove.840B has a few, such as ``". . ."``), but a
    line whose extra fields are numbers has a wrong dimension and is an error.
    """
    parts = line.rstrip("\r\n").rstrip().split(" ")
    n_values = len(parts) - 1
    if n_values != dim:
        if n_values > dim and not any(_is_number(p) for p in parts[1:-dim]):
            return " ".join(parts[:-dim]), parts[-dim:]
        raise ValueError(f"{where}: {n_values} values after the token, expected {dim} "
                         f"(the vector dimension of this file).")
    return parts[0], parts[1:]


def _iter_vector_lines(embedding_file):
    """Yield ``(where, token, values, dim)`` for each vector line of a GloVe/word2vec text file."""
    name = str(embedding_file)
    dim = None
    with open_text(embedding_file) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{name}:{number}"
            if dim is None:
                parts = line.split()
                header = _header(parts)
                if header is not None:
                    dim = header[1]
                    continue
                if len(parts) < 2:
                    raise ValueError(f"{where}: expected 'token v1 v2 ...' (GloVe/word2vec text format), "
                                     f"got {line.strip()!r:.60}.")
                dim = len(parts) - 1
            token, values = _split_line(line, dim, where)
            yield where, token, values, dim


@dataclass(frozen=True)
class PretrainedInfo:
    """What the estimator needs to know before it builds the tables."""

    dim: int  #: vector dimension of the file
    dim_where: str  #: "file:line" that fixed the dimension (for error messages)
    max_id: int  #: largest id a vector can be placed at (-1 for an empty file)


def pretrained_info(embedding_file, vocab_file=None) -> PretrainedInfo:
    """Dimension of a pretrained file and the largest id its vectors go to.

    Reads the first vector line, plus the vocabulary file; without a vocabulary
    file (ids are then line order) it counts the lines.
    """
    lines = _iter_vector_lines(embedding_file)
    first = next(lines, None)
    if first is None:
        raise ValueError(f"{embedding_file}: no vectors in this pretrained embedding file.")
    where, _, _, dim = first
    if vocab_file is not None:
        vocab = read_vocab_file(vocab_file)
        max_id = max(vocab.values(), default=-1)
    else:
        max_id = sum(1 for _ in lines)  # first line is id 0, so the count of the rest is the last id
    return PretrainedInfo(dim=dim, dim_where=where, max_id=max_id)


def apply_pretrained_settings(sides: list[dict], *, tied: bool, default_token_dim: int) -> None:
    """Fix each side's token-embedding dim from its pretrained file (in place).

    A file's vectors cannot be resized, so its dimension wins: a side left at the
    default ``token_embedding_dim`` takes it; a side set explicitly to another
    value is an error naming the file. Sets ``side["pretrained"]`` (a
    :class:`PretrainedInfo` or None) and ``side["token_dim_from_file"]``. With
    tied tables, the one file sets the dimension of both sides; two different
    files are an error.
    """
    for s in sides:
        s["pretrained"] = (None if s["pretrained_embedding_file"] is None
                           else pretrained_info(s["pretrained_embedding_file"], s["vocab_file"]))
        s["token_dim_from_file"] = False
    with_file = [i for i, s in enumerate(sides) if s["pretrained"] is not None]
    if tied and len(with_file) == 2 and (
            (sides[0]["pretrained_embedding_file"], sides[0]["vocab_file"])
            != (sides[1]["pretrained_embedding_file"], sides[1]["vocab_file"])):
        raise ValueError("tied_token_embedding_weight=True shares one token table, so it takes one pretrained "
                         "file: enc0 and enc1 name different pretrained_embedding_file/vocab_file.")
    for i in with_file:
        info = sides[i]["pretrained"]
        targets = range(len(sides)) if tied else (i,)
        for j in targets:
            dim = sides[j]["token_embedding_dim"]
            if dim != info.dim and dim != default_token_dim:
                raise ValueError(
                    f"{info.dim_where}: enc{i}_pretrained_embedding_file has {info.dim}-dimensional vectors but "
                    f"enc{j}_token_embedding_dim={dim}; leave enc{j}_token_embedding_dim at its default or set it "
                    f"to {info.dim}.")
            sides[j]["token_embedding_dim"] = info.dim
            sides[j]["token_dim_from_file"] = True


def read_pretrained_vectors(embedding_file, vocab_file=None, *, dim: int | None = None):
    """Parse a GloVe/word2vec text file.

    Parameters
    ----------
    embedding_file : path or file object
        ``token v1 v2 ...`` per line, plain or gzip, optionally a word2vec header
        line ``count dim``.
    vocab_file : path, dict or None
        JSON token -> id (or that dict). Tokens of the file missing from it are
        skipped (only their field count is checked); the first vector of a
        repeated token wins. None: the i-th vector goes to id i.
    dim : int, optional
        Required vector dimension.

    Returns
    -------
    ids : ndarray of int64, vectors : ndarray of float32 (len(ids), dim)

    Raises
    ------
    ValueError
        ``file:line: ...`` for a malformed line, a value that is not a number, or
        a dimension other than ``dim``.
    """
    vocab = vocab_file if isinstance(vocab_file, Mapping) or vocab_file is None else read_vocab_file(vocab_file)
    ids, rows, seen = [], [], set()
    for position, (where, token, values, file_dim) in enumerate(_iter_vector_lines(embedding_file)):
        if dim is not None and file_dim != dim:
            raise ValueError(f"{where}: vectors have {file_dim} values but the token table has dimension "
                             f"{dim}.")
        index = position if vocab is None else vocab.get(token)
        if index is None or index in seen:
            continue
        try:
            row = np.array(values, dtype=np.float32)
        except ValueError:
            bad = next(v for v in values if not _is_number(v))
            raise ValueError(f"{where}: {bad!r:.30} is not a number (token {token!r:.40}).") from None
        seen.add(index)
        ids.append(index)
        rows.append(row)
    width = dim if dim is not None else (len(rows[0]) if rows else 0)
    vectors = np.stack(rows) if rows else np.empty((0, width), dtype=np.float32)
    return np.asarray(ids, dtype=np.int64), vectors


def load_pretrained_table(table: torch.nn.Embedding, embedding_file, vocab_file, *, freeze: bool, side: str):
    """Copy pretrained vectors into ``table`` in place.

    Row ``vocab[token]`` gets the token's vector; rows without one keep their
    random initialisation. ``freeze=True`` keeps the whole table fixed during
    training (``requires_grad`` False), as SageMaker's
    ``enc*_freeze_pretrained_embedding`` does.

    Raises
    ------
    ValueError
        Naming the file and line for a malformed line or a dimension other than
        the table's, and the vocabulary file for an id outside the table.
    """
    n_rows = table.num_embeddings - 1  # the last row is the unknown-token row
    ids, vectors = read_pretrained_vectors(embedding_file, vocab_file, dim=table.embedding_dim)
    if len(ids) and ids.max() >= n_rows:
        source = vocab_file if vocab_file is not None else embedding_file
        raise ValueError(f"{source}: id {int(ids.max())} is outside {side}'s vocabulary of {n_rows} ids "
                         f"({side}_vocab_size); raise {side}_vocab_size or leave it None to infer it.")
    with torch.no_grad():
        weight = table.weight
        weight[torch.from_numpy(ids).to(weight.device)] = torch.from_numpy(vectors).to(weight.device, weight.dtype)
    table.weight.requires_grad_(not freeze)
    return table


# ------------------------------------------------------------------- tokenizer
