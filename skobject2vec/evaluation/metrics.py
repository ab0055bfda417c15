"""Scorers for retrieval/recommendation (hits@k, mean reciprocal rank) and for
similarity regression (Spearman, Pearson).

All of them plug into scikit-learn's model selection as ``scoring``::

    GridSearchCV(Object2VecClassifier(), grid, scoring=make_mrr_scorer())
    cross_val_score(Object2VecRegressor(), X, y, scoring=spearman_scorer)

Ranking scorers answer the recommender's question "if I rank candidate items
for this user (or query), how high does the item they actually chose come?".
For each *relevant* record ``(in0, in1)`` of the evaluated data (a positive pair;
every pair for a regressor unless a ``threshold`` is given), the true ``in1`` is
ranked against a candidate set of ``in1`` items, scored against the record's
``in0``:

* candidates: by default every distinct ``in1`` of the evaluated data (each
  cross-validation fold ranks among its own items), or a fixed pool you pass
  (the true item is always added);
* filtered ranking (the knowledge-graph and recommender convention): the other
  relevant items of the same ``in0`` are left out of its candidate list, so a
  user who liked five movies is not penalised for ranking the other four high;
* score: the model's own pair score (``predict_proba`` of the positive class, or
  ``predict`` for a regressor), or the cosine / dot product of the two encoders'
  embeddings (``similarity="cosine"``), which is how a nearest-neighbour index
  over ``transform`` output would retrieve;
* ties count half (the expected rank under random tie-breaking).

Scoring with the model costs one pair prediction per (query, candidate): use
``max_queries`` or a smaller candidate pool on large folds. Embedding similarity
costs one encoder pass per query and per candidate.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import make_scorer

from ..data.records import array_to_pairs, looks_like_records, records_to_pairs

__all__ = [
    "spearman_correlation",
    "pearson_correlation",
    "spearman_scorer",
    "pearson_scorer",
    "ranks_of_true_pairs",
    "hits_at_k",
    "mean_reciprocal_rank",
    "RankingScorer",
    "make_hits_at_k_scorer",
    "make_mrr_scorer",
]

SIMILARITIES = ("model", "cosine", "dot")


# ------------------------------------------------------------ similarity regression
def spearman_correlation(y_true, y_pred) -> float:
    """Spearman rank correlation of predicted and true scores (STS benchmarks report it)."""
    return float(stats.spearmanr(np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)).statistic)


def pearson_correlation(y_true, y_pred) -> float:
    """Pearson correlation of predicted and true scores."""
    return float(stats.pearsonr(np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)).statistic)


#: ``scoring=spearman_scorer``: Spearman correlation of ``predict(X)`` with ``y`` (greater is better).
spearman_scorer = make_scorer(spearman_correlation)
#: ``scoring=pearson_scorer``: Pearson correlation of ``predict(X)`` with ``y`` (greater is better).
pearson_scorer = make_scorer(pearson_correlation)


# --------------------------------------------------------------------- ranking
def _sequences(X) -> tuple[list, list]:
    """(in0 tuples, in1 tuples) from any of the estimator's pair formats."""
    if looks_like_records(X):
        pairs = records_to_pairs(X, what="ranking scorer")
    else:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] < 2:
            raise ValueError(f"ranking scorer: X must be pair records or a 2-D token array; got shape {X.shape}.")
        pairs = array_to_pairs(X.astype(np.int64))
    assert pairs.in0 is not None and pairs.in1 is not None  # pair records or a 2-D array: both sides
    return [tuple(s) for s in pairs.in0.to_lists()], [tuple(s) for s in pairs.in1.to_lists()]


def _relevant(estimator, y, n, positive_label, threshold) -> np.ndarray:
    if y is None:
        return np.ones(n, dtype=bool)
    y = np.asarray(y)
    if len(y) != n:
        raise ValueError(f"ranking scorer: X has {n} records but y has {len(y)} values.")
    if hasattr(estimator, "classes_"):
        return y == _positive_label(estimator, positive_label)
    return np.ones(n, dtype=bool) if threshold is None else y >= threshold


def _positive_label(estimator, positive_label):
    classes = list(estimator.classes_)
    if positive_label is None:
        return 1 if 1 in classes else classes[-1]
    if positive_label not in classes:
        raise ValueError(f"positive_label={positive_label!r} is not one of the classes {classes}.")
    return positive_label


def _score_matrix(estimator, queries, candidates, similarity, positive_label) -> np.ndarray:
    """Scores (n_queries, n_candidates) of each candidate in1 for each query in0."""
    if similarity == "model":
        records = [{"in0": list(q), "in1": list(c)} for q in queries for c in candidates]
        if hasattr(estimator, "classes_"):
            column = list(estimator.classes_).index(_positive_label(estimator, positive_label))
            flat = estimator.predict_proba(records)[:, column]
        else:
            flat = estimator.predict(records)
        return np.asarray(flat, dtype=np.float64).reshape(len(queries), len(candidates))
    left = estimator.transform([{"in0": list(q)} for q in queries])
    right = estimator.transform([{"in1": list(c)} for c in candidates])
    if similarity == "cosine":
        left = left / np.maximum(np.linalg.norm(left, axis=1, keepdims=True), 1e-12)
        right = right / np.maximum(np.linalg.norm(right, axis=1, keepdims=True), 1e-12)
    return left @ right.T


def ranks_of_true_pairs(estimator, X, y=None, *, candidates=None, similarity="model", filtered=True,
                        positive_label=None, threshold=None, max_queries=None, random_state=0) -> np.ndarray:
    """Rank of each relevant record's true ``in1`` among the candidates for its ``in0``.

    Parameters
    ----------
    estimator : fitted Object2VecClassifier or Object2VecRegressor
    X : list of dict, DataFrame or 2-D array
        Pairs, in any format the estimator accepts.
    y : array-like of shape (n_samples,), default=None
        Labels or scores deciding which records are relevant (queries). None: all.
    candidates : list of sequences of int, default=None
        The ``in1`` items to rank. None: the distinct ``in1`` of ``X``. The true
        item of each query is always among them.
    similarity : {"model", "cosine", "dot"}, default="model"
        "model": the pair model's score (positive-class probability, or the
        regressor's prediction). "cosine"/"dot": similarity of ``enc0(in0)`` and
        ``enc1(in1)`` embeddings.
    filtered : bool, default=True
        Leave the query's other relevant items out of its candidates.
    positive_label : label, default=None
        Classifier: the label of relevant records and of the probability used to
        score. None: ``1`` if it is a class, else the last class.
    threshold : float, default=None
        Regressor: records with ``y >= threshold`` are relevant. None: all.
    max_queries : int, default=None
        Rank at most this many distinct ``in0`` (a seeded random subset).
    random_state : int, default=0
        Seed of the ``max_queries`` subset.

    Returns
    -------
    ranks : ndarray of shape (n_relevant,)
        1 is best; ties count half.
    """
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity={similarity!r}; expected one of {SIMILARITIES}.")
    in0, in1 = _sequences(X)
    relevant = np.flatnonzero(_relevant(estimator, y, len(in0), positive_label, threshold))
    if relevant.size == 0:
        raise ValueError("ranking scorer: no relevant record (positive pair) to rank in this data.")
    positives: dict[tuple, set] = {}
    for i in relevant:
        positives.setdefault(in0[i], set()).add(in1[i])
    queries = list(positives)
    if max_queries is not None and len(queries) > max_queries:
        pick = np.random.default_rng(random_state).choice(len(queries), max_queries, replace=False)
        queries = [queries[i] for i in np.sort(pick)]
    pool: dict[tuple[int, ...], None] | list[tuple[int, ...]]  # the candidates, then as a list
    pool = dict.fromkeys(in1 if candidates is None else (tuple(int(t) for t in c) for c in candidates))
    for q in queries:
        pool.update(dict.fromkeys(positives[q]))  # the true items are always candidates
    pool = list(pool)
    column = {item: j for j, item in enumerate(pool)}
    scores = _score_matrix(estimator, queries, pool, similarity, positive_label)
    ranks = []
    for row, q in zip(scores, queries):
        others = [column[item] for item in positives[q]] if filtered else []
        for item in positives[q]:
            j = column[item]
            keep = np.ones(len(pool), dtype=bool)
            keep[others] = False
            keep[j] = False
            higher = np.count_nonzero(row[keep] > row[j])
            ties = np.count_nonzero(row[keep] == row[j])
            ranks.append(1.0 + higher + 0.5 * ties)
    return np.asarray(ranks)


def hits_at_k(ranks, k: int) -> float:
    """Fraction of ranks ``<= k``."""
    return float(np.mean(np.asarray(ranks) <= k))


def mean_reciprocal_rank(ranks) -> float:
    """Mean of ``1 / rank``: 1 when every true item comes first."""
    return float(np.mean(1.0 / np.asarray(ranks, dtype=np.float64)))


class RankingScorer:
    """A ``scoring`` callable ``scorer(estimator, X, y) -> float`` (greater is better).

    Parameters
    ----------
    metric : {"mrr", "hits"}
        Mean reciprocal rank, or hits@k.
    k : int, default=10
        Cut-off of hits@k.
    **options
        Passed to :func:`ranks_of_true_pairs` (``candidates``, ``similarity``,
        ``filtered``, ``positive_label``, ``threshold``, ``max_queries``).
    """

    def __init__(self, metric: str, k: int = 10, **options):
        if metric not in ("mrr", "hits"):
            raise ValueError(f"metric={metric!r}; expected 'mrr' or 'hits'.")
        if metric == "hits" and (not isinstance(k, (int, np.integer)) or k < 1):
            raise ValueError(f"k={k!r}; expected an integer >= 1.")
        self.metric, self.k, self.options = metric, int(k), options

    def __call__(self, estimator, X, y=None) -> float:
        ranks = ranks_of_true_pairs(estimator, X, y, **self.options)
        return mean_reciprocal_rank(ranks) if self.metric == "mrr" else hits_at_k(ranks, self.k)

    def __repr__(self) -> str:
        name = "mrr" if self.metric == "mrr" else f"hits@{self.k}"
        options = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"RankingScorer({name}{options})"


def make_hits_at_k_scorer(k: int = 10, **options) -> RankingScorer:
    """Scorer: fraction of relevant records whose true ``in1`` ranks in the top ``k``.

    See :func:`ranks_of_true_pairs` for ``options``.

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV                    # doctest: +SKIP
    >>> search = GridSearchCV(Object2VecClassifier(), {"enc_dim": [16, 64]},
    ...                       scoring=make_hits_at_k_scorer(10))            # doctest: +SKIP
    """
    return RankingScorer("hits", k=k, **options)


def make_mrr_scorer(**options) -> RankingScorer:
    """Scorer: mean reciprocal rank of the true ``in1`` of relevant records.

    See :func:`ranks_of_true_pairs` for ``options``.
    """
    return RankingScorer("mrr", **options)
