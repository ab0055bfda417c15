"""The embedding side of the estimators: what scikit-learn, sentence-transformers and
SageMaker users reach for next to ``fit``/``predict``.

:class:`EmbeddingMixin` is inherited by :class:`~skobject2vec.Object2VecClassifier`
and :class:`~skobject2vec.Object2VecRegressor`. It adds

* ``transform`` with ``set_output`` (pandas/polars) and ``get_feature_names_out``;
* ``encode`` / ``similarity`` / ``most_similar``, after sentence-transformers;
* ``n_iter_``, ``loss_curve_``, ``validation_scores_``, ``best_epoch_``, read from
  ``history_`` (scikit-learn's MLP names).
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch
from sklearn.utils._set_output import ADAPTERS_MANAGER, _get_output_config, _SetOutputMixin
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from .data.batching import inference_batches
from .inference import INFERENCE_BATCH_SIZE, embed, inference_net
from .threads import torch_threads

__all__ = ["EmbeddingMixin", "similarity", "most_similar"]

_SIDES = {"in0": 0, "in1": 1, 0: 0, 1: 1, "enc0": 0, "enc1": 1}


def _side_names(enc_dim: int, side: int) -> list[str]:
    return [f"enc{side}_{i}" for i in range(enc_dim)]


def _as_tensor(a):
    if isinstance(a, torch.Tensor):
        return a
    return torch.from_numpy(np.ascontiguousarray(a))


def _scores(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    if metric == "cosine":
        a = torch.nn.functional.normalize(a, dim=-1)
        b = torch.nn.functional.normalize(b, dim=-1)
    elif metric != "dot":
        raise ValueError(f"metric={metric!r}: expected 'cosine' or 'dot'.")
    return a @ b.T


def _check_embeddings(a, what):
    t = _as_tensor(a)
    if t.ndim == 1:
        t = t[None, :]
    if t.ndim != 2 or not t.is_floating_point():
        raise ValueError(f"{what}: expected a 2-D float array of embeddings, got shape {tuple(t.shape)} "
                         f"and dtype {t.dtype}.")
    return t


def similarity(a, b, metric: str = "cosine"):
    """Pairwise similarity of two sets of embeddings.

    Parameters
    ----------
    a : array-like or torch.Tensor of shape (n, d)
    b : array-like or torch.Tensor of shape (m, d)
    metric : {"cosine", "dot"}, default="cosine"

    Returns
    -------
    scores : ndarray or torch.Tensor of shape (n, m)
        A tensor when ``a`` is one, else a NumPy array; the dtype of the inputs
        (promoted between ``a`` and ``b``).
    """
    as_torch = isinstance(a, torch.Tensor)
    ta = _check_embeddings(np.asarray(a) if not isinstance(a, torch.Tensor) else a, "a")
    tb = _check_embeddings(np.asarray(b) if not isinstance(b, torch.Tensor) else b, "b")
    dtype = torch.promote_types(ta.dtype, tb.dtype)
    out = _scores(ta.to(dtype), tb.to(device=ta.device, dtype=dtype), metric)
    return out if as_torch else out.cpu().numpy()


def most_similar(query, corpus, k: int = 10, *, metric: str = "cosine", chunk_size: int = 8192):
    """Exact top-``k`` search of ``query`` embeddings in ``corpus`` embeddings.

    The corpus is scored ``chunk_size`` rows at a time and only the running top ``k``
    are kept, so memory is ``O(n_query * (chunk_size + k))`` whatever the corpus size.

    Parameters
    ----------
    query : array-like of shape (n_query, d)
    corpus : array-like of shape (n_corpus, d)
    k : int, default=10
        Clipped to ``n_corpus``.
    metric : {"cosine", "dot"}, default="cosine"
    chunk_size : int, default=8192
        Corpus rows scored per step.

    Returns
    -------
    scores : ndarray of shape (n_query, k)
        Best first.
    indices : ndarray of int64, shape (n_query, k)
        Rows of ``corpus``, best first.
    """
    q = _check_embeddings(np.asarray(query) if not isinstance(query, torch.Tensor) else query, "query")
    c = corpus if isinstance(corpus, torch.Tensor) else np.asarray(corpus)
    n_corpus = len(c)
    if n_corpus == 0:
        raise ValueError("corpus is empty.")
    if int(k) < 1:
        raise ValueError(f"k={k!r}: expected a positive integer.")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size={chunk_size!r}: expected a positive integer.")
    k = min(int(k), n_corpus)
    best_scores = best_index = None
    for start in range(0, n_corpus, int(chunk_size)):
        chunk = _check_embeddings(c[start:start + int(chunk_size)], "corpus")
        dtype = torch.promote_types(q.dtype, chunk.dtype)
        scores = _scores(q.to(dtype), chunk.to(device=q.device, dtype=dtype), metric)
        index = torch.arange(start, start + scores.shape[1], device=scores.device).expand_as(scores)
        if best_scores is not None:
            scores = torch.cat([best_scores.to(scores.dtype), scores], dim=1)
            index = torch.cat([cast(torch.Tensor, best_index), index], dim=1)  # set with best_scores
        top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        best_scores, best_index = top.values, torch.gather(index, 1, top.indices)
    assert best_scores is not None and best_index is not None  # the corpus is not empty: one chunk at least
    return best_scores.cpu().numpy(), best_index.cpu().numpy().astype(np.int64)


# (sklearn is untyped: mypy checks the class keyword against object.__init_subclass__)
class EmbeddingMixin(_SetOutputMixin, auto_wrap_output_keys=None):  # type: ignore[call-arg]
    """Embedding, retrieval, incremental-training and history API of the estimators.

    ``auto_wrap_output_keys=None`` here: :meth:`transform` wraps its own output
    (its column names depend on which sides the records hold); the estimator
    classes, which also inherit :class:`~sklearn.base.TransformerMixin`, get
    :meth:`set_output` and the wrapped ``fit_transform``.
    """

    # ------------------------------------------------------------- tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if tags.transformer_tags is not None:
            # transform follows the network's dtype, not the input's.
            tags.transformer_tags.preserves_dtype = ["float64"] if self.dtype == "float64" else []
        return tags

    # ------------------------------------------------------ transform
    def _side_embeddings(self, X):
        """``[(side, embeddings)]`` for the sides the records of ``X`` hold."""
        pairs = self._predict_pairs(X, single_side_ok=True)
        batcher = self._batcher()
        with torch_threads(self._inference_threads()):
            return [(side, embed(self.net_, ragged, side, batcher))
                    for side, ragged in enumerate((pairs.in0, pairs.in1)) if ragged is not None]

    def _wrap_output(self, Z, X, names):
        dense = _get_output_config("transform", self)["dense"]
        if dense == "default":
            return Z
        return ADAPTERS_MANAGER.adapters[dense].create_container(Z, X, columns=np.asarray(names, dtype=object))

    def transform(self, X):
        """Embeddings, in the network's dtype (``dtype`` parameter).

        Pairs give ``[enc0(in0) | enc1(in1)]`` of shape (n, 2 * enc_dim), columns
        ``enc0_0 .. enc1_{enc_dim-1}``. Records that all hold only ``"in0"`` (or
        only ``"in1"``) give that encoder's embedding, shape (n, enc_dim), columns
        ``enc0_*`` (or ``enc1_*``): SageMaker's embedding mode. With
        ``set_output(transform="pandas")`` (or ``"polars"``, or the global
        :func:`sklearn.set_config`) the result is a DataFrame with these columns.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), list of dict or DataFrame
            Pairs, or records holding only ``in0`` (or only ``in1``).

        Returns
        -------
        embeddings : ndarray or DataFrame of shape (n_samples, 2 * enc_dim) or (n_samples, enc_dim)
            One row per input.
        """
        parts = self._side_embeddings(X)
        Z = parts[0][1] if len(parts) == 1 else np.hstack([z for _, z in parts])
        names = [name for side, _ in parts for name in _side_names(self.net_.config["enc_dim"], side)]
        return self._wrap_output(Z, X, names)

    def get_feature_names_out(self, input_features=None):
        """Names of the :meth:`transform` columns of pairs: ``enc0_0, .., enc1_{enc_dim-1}``.

        Single-side records give the first (``enc0_*``) or second (``enc1_*``) half.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against ``feature_names_in_`` / ``n_features_in_`` (the
            output names do not depend on them).

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``enc0_0 .. enc0_{d-1}, enc1_0 .. enc1_{d-1}`` for ``d = enc_dim``.
        """
        check_is_fitted(self, "net_")
        if input_features is not None:
            _check_feature_names_in(self, input_features, generate_names=False)
        d = self.net_.config["enc_dim"]
        return np.asarray(_side_names(d, 0) + _side_names(d, 1), dtype=object)

    # -------------------------------------------------- sentence-transformers
    def encode(self, X, side="auto", batch_size=None, normalize_embeddings=False, convert_to="numpy",
               show_progress_bar=None):
        """One embedding per input, as sentence-transformers' ``encode``.

        Parameters
        ----------
        X : list of dict, or list of token-id sequences
            Records holding ``"in0"`` or ``"in1"`` (each encoded by its own side's
            encoder; mixed lists are fine), or, with ``side="in0"``/``"in1"``,
            plain token-id sequences or pair records (that side is taken).
        side : {"auto", "in0", "in1"}, default="auto"
        batch_size : int or None, default=None
            Records per forward pass (default 1024).
        normalize_embeddings : bool, default=False
            Scale each embedding to unit L2 norm (then dot product = cosine).
        convert_to : {"numpy", "torch"}, default="numpy"
            A NumPy array, or a tensor on the model's device.
        show_progress_bar : bool or None, default=None
            None shows one when ``verbose > 0``.

        Returns
        -------
        embeddings : ndarray or torch.Tensor of shape (n, enc_dim)
            In the network's dtype; equal to :meth:`transform` of the single-side records.
        """
        check_is_fitted(self, "net_")
        if convert_to not in ("numpy", "torch"):
            raise ValueError(f"convert_to={convert_to!r}: expected 'numpy' or 'torch'.")
        records, sides = self._encode_records(X, side)
        batch_size = INFERENCE_BATCH_SIZE if batch_size is None else int(batch_size)
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: expected a positive integer.")
        show = bool(self.verbose) if show_progress_bar is None else bool(show_progress_bar)
        (net, dtype), batcher = inference_net(self.net_), self._batcher()
        flat = net.flat_sides()
        out = torch.empty((len(records), net.config["enc_dim"]), dtype=dtype, device=batcher.device)
        from tqdm.auto import tqdm

        with torch_threads(self._inference_threads()), torch.inference_mode(), \
                tqdm(total=len(records), desc="encode", unit="record", disable=not show) as bar:
            for s in (0, 1):
                where = np.flatnonzero(sides == s)
                if not where.size:
                    continue
                pairs = self._predict_pairs([records[i] for i in where], single_side_ok=True)
                ragged = pairs.in0 if s == 0 else pairs.in1
                for index in inference_batches(ragged.lengths, batch_size):
                    ids, lengths = batcher.side(ragged, index, s, flat[s])
                    out[torch.from_numpy(where[index]).to(out.device)] = net.encode(s, ids, lengths).to(dtype)
                    bar.update(len(index))
        if normalize_embeddings:
            out = torch.nn.functional.normalize(out, dim=1)
        return out if convert_to == "torch" else out.cpu().numpy()

    @staticmethod
    def _encode_records(X, side):
        if side not in ("auto",) and side not in _SIDES:
            raise ValueError(f"side={side!r}: expected 'auto', 'in0' or 'in1'.")
        if isinstance(X, (dict, str)) or not hasattr(X, "__len__"):
            raise TypeError(f"X must be a list of records or of token-id sequences, got {type(X).__name__}.")
        if hasattr(X, "to_dict") and hasattr(X, "columns"):  # a DataFrame of in0/in1 columns
            X = [{k: v for k, v in row.items() if v is not None and not (np.ndim(v) == 0 and v != v)}
                 for row in X.to_dict("records")]
        records, sides = [], np.empty(len(X), dtype=np.int64)
        for i, item in enumerate(X):
            if side == "auto":
                if not isinstance(item, dict):
                    raise ValueError(f"X[{i}] is not a record: with side='auto' each input is a dict holding "
                                     "'in0' or 'in1'; pass side='in0' or 'in1' for plain token sequences.")
                keys = [k for k in ("in0", "in1") if k in item]
                if len(keys) != 1:
                    raise ValueError(f"X[{i}] holds {keys or 'neither in0 nor in1'}: encode takes one side per "
                                     "record; pass side='in0' or 'in1' to pick one.")
                s = _SIDES[keys[0]]
                records.append({keys[0]: item[keys[0]]})
            else:
                s = _SIDES[side]
                name = f"in{s}"
                if isinstance(item, dict):
                    if name not in item:
                        raise ValueError(f"X[{i}] has no {name!r}.")
                    item = item[name]
                records.append({name: item})
            sides[i] = s
        return records, sides

    def similarity(self, a, b, metric="cosine"):
        """Pairwise similarity of embeddings; see :func:`skobject2vec.similarity`.

        Parameters
        ----------
        a : array-like or tensor of shape (n_a, d)
            Embeddings, e.g. from :meth:`encode`.
        b : array-like or tensor of shape (n_b, d)
            Embeddings.
        metric : {"cosine", "dot"}, default="cosine"
            Similarity measure.

        Returns
        -------
        scores : ndarray or tensor of shape (n_a, n_b)
            ``scores[i, j]`` compares ``a[i]`` and ``b[j]``.
        """
        return similarity(a, b, metric=metric)

    def most_similar(self, query, corpus, k=10, *, metric="cosine", chunk_size=8192, side="auto"):
        """Top-``k`` corpus entries for each query, in bounded memory.

        ``query`` and ``corpus`` are embeddings (2-D float arrays or tensors) or
        inputs for :meth:`encode` (encoded with ``side``). See
        :func:`skobject2vec.most_similar`.

        Parameters
        ----------
        query : array-like, tensor or records
            Query embeddings of shape (n_query, d), or inputs to :meth:`encode`.
        corpus : array-like, tensor or records
            Corpus embeddings of shape (n_corpus, d), or inputs to :meth:`encode`.
        k : int, default=10
            Entries returned per query (at most ``n_corpus``).
        metric : {"cosine", "dot"}, default="cosine"
            Similarity measure.
        chunk_size : int, default=8192
            Corpus rows scored at once: memory is bounded by ``n_query * chunk_size``.
        side : {"auto", "in0", "in1"}, default="auto"
            Encoder for records given as inputs (see :meth:`encode`).

        Returns
        -------
        scores : ndarray of shape (n_query, k)
            Similarities, best first.
        indices : ndarray of shape (n_query, k)
            Corpus rows of those entries.
        """
        def embeddings(a):
            if isinstance(a, torch.Tensor) and a.is_floating_point():
                return a
            if isinstance(a, np.ndarray) and a.dtype.kind == "f":
                return a
            return self.encode(a, side=side)

        return most_similar(embeddings(query), embeddings(corpus), k, metric=metric, chunk_size=chunk_size)

    # ---------------------------------------------------- incremental training
    # ------------------------------------------------------ history views
    @property
    def _loss_key(self):
        return "cross_entropy" if self._task == "classification" else "mean_squared_error"

    @property
    def n_iter_(self) -> int:
        """Epochs run (all ``fit``/``partial_fit`` calls that built on each other)."""
        return len(self.history_)

    @property
    def loss_curve_(self) -> list:
        """Training loss per epoch (cross-entropy, or mean squared error in the target's units)."""
        return [record[f"train:{self._loss_key}"] for record in self.history_]

    @property
    def validation_scores_(self):
        """Validation score per epoch, None without validation data: accuracy for the
        classifier, mean squared error (target's units, lower is better) for the regressor."""
        key = "validation:accuracy" if self._task == "classification" else "validation:mean_squared_error"
        if not self.history_ or key not in self.history_[0]:
            return None
        return [record.get(key) for record in self.history_]

    @property
    def best_epoch_(self) -> int:
        """The epoch whose weights the model holds: the best validation epoch with
        early stopping data, else the last one."""
        best = [record["epoch"] for record in self.history_ if record.get("best")]
        return best[-1] if best else self.history_[-1]["epoch"]
