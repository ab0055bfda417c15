"""Vocabularies: pretrained token vectors (GloVe/word2vec text) and a text tokenizer.

Two things live here:

* :func:`load_pretrained_table` copies pretrained vectors into a token table,
  placing each at the id a JSON vocabulary file gives its token (SageMaker's
  ``enc*_pretrained_embedding_file`` + ``enc*_vocab_file``).
* :class:`TextPairTokenizer` turns raw sentence pairs into the ``{"in0": ids,
  "in1": ids}`` records the estimators read, so text goes through a Pipeline.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .jsonlines import open_text

__all__ = [
    "PretrainedInfo",
    "apply_pretrained_settings",
    "TextPairTokenizer",
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
_PAIR_FIELDS = ("in0", "in1")


def _text_columns(X) -> dict[str, list]:
    """Split text input into ``{"in0": texts, "in1": texts}`` (one or both keys)."""
    if isinstance(X, (str, bytes)):
        raise ValueError("Expected a list of texts or of text pairs, got a single string; wrap it in a list.")
    columns = getattr(X, "columns", None)
    if columns is not None and hasattr(X, "iloc"):  # DataFrame
        named = [f for f in _PAIR_FIELDS if f in list(columns)]
        if named:
            return {f: X[f].tolist() for f in named}
        if X.shape[1] not in (1, 2):
            raise ValueError(f"A DataFrame of texts needs 1 or 2 columns (or columns in0/in1), got {X.shape[1]}.")
        return {f: X.iloc[:, i].tolist() for i, f in enumerate(_PAIR_FIELDS[: X.shape[1]])}
    if hasattr(X, "tolist") and not isinstance(X, (list, tuple)):  # ndarray, Series
        X = X.tolist()
    X = list(X)
    if not X:
        raise ValueError("No texts: the input is empty.")
    if isinstance(X[0], Mapping):
        keys = [f for f in _PAIR_FIELDS if f in X[0]]
        if not keys:
            raise ValueError("Records of texts need an 'in0' and/or 'in1' key.")
        for i, record in enumerate(X):
            if not isinstance(record, Mapping) or [f for f in _PAIR_FIELDS if f in record] != keys:
                raise ValueError(f"record {i}: expected the keys {keys} like record 0.")
        return {f: [record[f] for record in X] for f in keys}
    if isinstance(X[0], (str, bytes)):
        return {"in0": X}
    for i, row in enumerate(X):
        if isinstance(row, (str, bytes)) or not hasattr(row, "__len__") or len(row) not in (1, 2):
            raise ValueError(f"row {i}: expected a text or a (text0, text1) pair, got {row!r:.80}.")
    width = len(X[0])
    if any(len(row) != width for row in X):
        raise ValueError("All rows need the same number of texts (1 or 2).")
    return {f: [row[i] for row in X] for i, f in enumerate(_PAIR_FIELDS[:width])}


class TextPairTokenizer(TransformerMixin, BaseEstimator):
    """Turn texts or text pairs into token-id records, with one shared vocabulary.

    Use it as the first Pipeline step so that an Object2Vec estimator learns from
    raw sentence pairs::

        make_pipeline(TextPairTokenizer(), Object2VecRegressor())

    Both sides share the vocabulary (so it suits ``tied_token_embedding_weight``).
    Id 0 is reserved for the unknown token (words outside the vocabulary, and
    texts with no word at all); the vocabulary takes ids 1, 2, ... by decreasing
    frequency (ties alphabetical). Padding needs no id: the estimators mask it.
    A fitted Pipeline of this tokenizer and an estimator saves safely with
    :func:`skobject2vec.save` (the vocabulary goes into the artifact's JSON).

    Parameters
    ----------
    lowercase : bool, default=True
        Lowercase texts before tokenizing.
    token_pattern : str, default=r"\\w+|[^\\w\\s]"
        Regular expression whose matches are the tokens: words and single
        punctuation marks.
    min_count : int, default=1
        Keep tokens seen at least this many times in the training texts.
    max_vocab : int or None, default=None
        Keep at most this many of the most frequent tokens (the unknown token not
        counted).
    vocabulary : dict or None, default=None
        A fixed token -> id map (e.g. the ``enc0_vocab_file`` of pretrained
        vectors); ``fit`` then learns nothing and ``unknown_id`` is used for
        unknown tokens.
    unknown_id : int or None, default=None
        Id of unknown tokens with a fixed ``vocabulary``; None means
        ``vocabulary["<unk>"]`` if present, else 0.

    Attributes
    ----------
    vocabulary_ : dict of str -> int
        Token ids (the unknown token is ``"<unk>"`` unless a fixed vocabulary says
        otherwise).
    unknown_id_ : int
    vocab_size_ : int
        ``max(vocabulary_.values()) + 1``: the ``vocab_size`` the estimator infers.

    Examples
    --------
    >>> from skobject2vec import TextPairTokenizer
    >>> tok = TextPairTokenizer().fit([("A cat sat.", "The cat ran")])
    >>> tok.transform([("the cat", "a dog")])  # "dog" is unknown: id 0
    [{'in0': [6, 1], 'in1': [3, 0]}]
    >>> tok.transform(["cat sat"])  # single texts: in0 only, for embeddings
    [{'in0': [1, 5]}]
    """

    UNKNOWN_TOKEN = "<unk>"

    def __init__(self, *, lowercase=True, token_pattern=r"\w+|[^\w\s]", min_count=1, max_vocab=None,
                 vocabulary=None, unknown_id=None):
        self.lowercase = lowercase
        self.token_pattern = token_pattern
        self.min_count = min_count
        self.max_vocab = max_vocab
        self.vocabulary = vocabulary
        self.unknown_id = unknown_id

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.requires_fit = True
        return tags

    def tokenize(self, text) -> list[str]:
        """The tokens of one text (no ids)."""
        if not isinstance(text, str):
            if text is None or (isinstance(text, float) and np.isnan(text)):
                return []
            raise ValueError(f"Expected a text (str), got {type(text).__name__} {text!r:.60}.")
        if self.lowercase:
            text = text.lower()
        return re.findall(self.token_pattern, text)

    def fit(self, X, y=None):
        """Build the vocabulary from the texts of both sides."""
        columns = _text_columns(X)
        if self.vocabulary is not None:
            vocab = dict(self.vocabulary)
            bad = [(t, i) for t, i in vocab.items() if type(i) is not int or i < 0]  # noqa: E721
            if bad:
                raise ValueError(f"vocabulary maps {bad[0][0]!r} to {bad[0][1]!r}; ids must be integers >= 0.")
            unknown = self.unknown_id if self.unknown_id is not None else vocab.get(self.UNKNOWN_TOKEN, 0)
        else:
            if not (isinstance(self.min_count, (int, np.integer)) and self.min_count >= 1):
                raise ValueError(f"min_count must be an integer >= 1, got {self.min_count!r}.")
            if self.max_vocab is not None and not (isinstance(self.max_vocab, (int, np.integer))
                                                   and self.max_vocab >= 1):
                raise ValueError(f"max_vocab must be None or an integer >= 1, got {self.max_vocab!r}.")
            counts = Counter(token for texts in columns.values() for text in texts for token in self.tokenize(text))
            counts.pop(self.UNKNOWN_TOKEN, None)
            kept = sorted((t for t, c in counts.items() if c >= self.min_count), key=lambda t: (-counts[t], t))
            if self.max_vocab is not None:
                kept = kept[: self.max_vocab]
            vocab = {self.UNKNOWN_TOKEN: 0, **{t: i for i, t in enumerate(kept, start=1)}}
            unknown = 0
        self._set_vocabulary(vocab, unknown)
        return self

    def _set_vocabulary(self, vocab: dict, unknown: int):
        self.vocabulary_ = vocab
        self.unknown_id_ = int(unknown)
        self.vocab_size_ = max(max(vocab.values(), default=0), self.unknown_id_) + 1

    def encode(self, text) -> list[int]:
        """Token ids of one text; never empty (a text with no known word gives the unknown id)."""
        check_is_fitted(self, "vocabulary_")
        vocab, unknown = self.vocabulary_, self.unknown_id_
        return [vocab.get(token, unknown) for token in self.tokenize(text)] or [unknown]

    def transform(self, X):
        """Records ``{"in0": ids, "in1": ids}`` (or only ``in0``/``in1`` for single texts)."""
        check_is_fitted(self, "vocabulary_")
        columns = _text_columns(X)
        encoded = {f: [self.encode(text) for text in texts] for f, texts in columns.items()}
        n = len(next(iter(encoded.values())))
        return [{f: encoded[f][i] for f in encoded} for i in range(n)]

    def save_vocabulary(self, path) -> Path:
        """Write ``vocabulary_`` as a JSON token -> id file (an ``enc*_vocab_file``)."""
        check_is_fitted(self, "vocabulary_")
        path = Path(path)
        path.write_text(json.dumps(self.vocabulary_, ensure_ascii=False), encoding="utf-8")
        return path

    # Safe artifact: everything as JSON, restored without unpickling.
    def _artifact_state(self) -> dict:
        check_is_fitted(self, "vocabulary_")
        return {"params": self.get_params(), "vocabulary": self.vocabulary_, "unknown_id": self.unknown_id_}

    @classmethod
    def _from_artifact_state(cls, state: dict) -> "TextPairTokenizer":
        tokenizer = cls(**state["params"])
        tokenizer._set_vocabulary({str(k): int(v) for k, v in state["vocabulary"].items()}, state["unknown_id"])
        return tokenizer
