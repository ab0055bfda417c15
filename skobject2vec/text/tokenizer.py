"""TextPairTokenizer: raw text pairs to token ids (a Pipeline step)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["TextPairTokenizer"]

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
