"""Ranking (hits@k, MRR) and similarity (Spearman, Pearson) scorers."""

import numpy as np
import pytest
from scipy import stats
from sklearn.model_selection import GridSearchCV, cross_val_score
from support import FAST

from skobject2vec import Object2VecClassifier, Object2VecRegressor
from skobject2vec.datasets import make_score_pairs
from skobject2vec.evaluation import (
    hits_at_k,
    make_hits_at_k_scorer,
    make_mrr_scorer,
    mean_reciprocal_rank,
    pearson_scorer,
    ranks_of_true_pairs,
    spearman_correlation,
    spearman_scorer,
)


class DistanceModel:
    """Stand-in fitted classifier: P(1) falls with |in0[0] - in1[0]| (ranks are known by hand)."""

    classes_ = np.array([0, 1])

    def __init__(self, reverse=False):
        self.reverse = reverse

    def predict_proba(self, X):
        p = np.array([1.0 / (1.0 + abs(r["in0"][0] - r["in1"][0])) for r in X])
        p = 1.0 - p if self.reverse else p
        return np.column_stack([1 - p, p])

    def transform(self, X):
        side = "in0" if "in0" in X[0] else "in1"
        return np.array([[1.0, r[side][0] / 100.0] for r in X])


def _diagonal(n):
    """Records i pair item i with item i: the true in1 is the closest candidate."""
    return [{"in0": [10 * i], "in1": [10 * i]} for i in range(n)], np.ones(n, dtype=int)


def test_perfect_and_worst_rankings():
    X, y = _diagonal(5)
    ranks = ranks_of_true_pairs(DistanceModel(), X, y)
    np.testing.assert_array_equal(ranks, [1, 1, 1, 1, 1])
    assert make_mrr_scorer()(DistanceModel(), X, y) == 1.0
    # the reversed model ranks the true (nearest) item last for the end points
    worst = ranks_of_true_pairs(DistanceModel(reverse=True), X, y)
    assert worst[0] == 5 and worst[-1] == 5
    assert make_hits_at_k_scorer(1)(DistanceModel(reverse=True), X, y) == 0.0


def test_only_positive_records_are_queries_and_candidates_include_all_items():
    X, y = _diagonal(4)
    X = X + [{"in0": [0], "in1": [5]}]  # a negative pair: its in1 is a candidate, it is no query
    y = np.append(y, 0)
    ranks = ranks_of_true_pairs(DistanceModel(), X, y)
    assert len(ranks) == 4
    assert ranks[0] == 1  # the true [0] (distance 0) still beats the negative's [5]
    ranks = ranks_of_true_pairs(DistanceModel(), [{"in0": [4], "in1": [0]}, {"in0": [0], "in1": [3]}], [1, 0])
    np.testing.assert_array_equal(ranks, [2])  # [3] (distance 1) beats the true [0] (distance 4)


def test_filtered_ranking_ignores_other_positives_of_the_same_query():
    # One user liked three items; each is ranked among the candidates without the other two.
    X = [{"in0": [0], "in1": [d]} for d in (1, 2, 3)] + [{"in0": [50], "in1": [30]}]
    y = [1, 1, 1, 0]
    filtered = ranks_of_true_pairs(DistanceModel(), X, y)
    raw = ranks_of_true_pairs(DistanceModel(), X, y, filtered=False)
    np.testing.assert_array_equal(np.sort(filtered), [1, 1, 1])
    np.testing.assert_array_equal(np.sort(raw), [1, 2, 3])


def test_ties_count_half_and_explicit_candidate_pool():
    X = [{"in0": [10], "in1": [12]}]
    # candidates 8 and 12 tie with the true item at distance 2; 30 is far away
    ranks = ranks_of_true_pairs(DistanceModel(), X, [1], candidates=[[8], [30]])
    np.testing.assert_array_equal(ranks, [1.5])
    assert hits_at_k([1.5, 3], 2) == 0.5
    assert mean_reciprocal_rank([1, 2, 4]) == pytest.approx((1 + 0.5 + 0.25) / 3)


def test_embedding_similarity_and_max_queries():
    X, y = _diagonal(6)
    ranks = ranks_of_true_pairs(DistanceModel(), X, y, similarity="dot")
    assert ranks.shape == (6,)
    assert len(ranks_of_true_pairs(DistanceModel(), X, y, max_queries=2)) == 2
    with pytest.raises(ValueError, match="similarity='euclid'"):
        ranks_of_true_pairs(DistanceModel(), X, y, similarity="euclid")
    with pytest.raises(ValueError, match="no relevant record"):
        ranks_of_true_pairs(DistanceModel(), X, np.zeros(6, dtype=int))


def item_pairs(n, n_items=20, tokens_per_item=6, seed=0):
    """Retrieval data: each side shows 3 random tokens of one item (its own token block);
    label 1 when both sides show the same item. Folds share items, not records."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n_items, n)
    same = rng.random(n) < 0.5
    second = np.where(same, first, (first + rng.integers(1, n_items, n)) % n_items)

    def view(item):
        return (item * tokens_per_item + rng.choice(tokens_per_item, 3, replace=False)).tolist()

    return [{"in0": view(a), "in1": view(b)} for a, b in zip(first, second)], same.astype(int)


@pytest.mark.slow
def test_ranking_scorer_in_grid_search_prefers_a_trained_model():
    X, y = item_pairs(800, seed=3)
    scoring = {"mrr": make_mrr_scorer(), "hits@5": make_hits_at_k_scorer(5, similarity="cosine")}
    search = GridSearchCV(Object2VecClassifier(**dict(FAST, tied_token_embedding_weight=True)), {"epochs": [1, 8]},
                          scoring=scoring, refit="mrr", cv=2)
    search.fit(X, y)
    mrr = search.cv_results_["mean_test_mrr"]
    assert search.best_params_ == {"epochs": 8}
    assert mrr[1] > mrr[0]
    # ~200 distinct candidates per fold: a random ranking gives MRR about 0.03
    assert mrr[1] > 0.1
    hits = search.cv_results_["mean_test_hits@5"]
    assert hits[1] > hits[0]  # the trained model also ranks more true pairs in the top 5


def test_ranking_scorer_works_on_arrays_and_regressors():
    X, y = make_score_pairs(200, seed=0)
    reg = Object2VecRegressor(**FAST).fit(X, y)
    ranks = ranks_of_true_pairs(reg, X[:40], y[:40], threshold=np.median(y))
    assert 0 < len(ranks) < 40
    array = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [1, 2, 7, 8]])
    clf = Object2VecClassifier(**dict(FAST, epochs=2)).fit(array, [1, 0, 1])
    array_ranks = ranks_of_true_pairs(clf, array, [1, 0, 1])
    assert len(array_ranks) == 2  # the two positive rows
    assert make_mrr_scorer()(clf, array, [1, 0, 1]) == pytest.approx(np.mean(1.0 / array_ranks))


def test_similarity_scorers_match_scipy():
    X, y = make_score_pairs(300, seed=1)
    reg = Object2VecRegressor(**FAST).fit(X[:200], y[:200])
    predicted = reg.predict(X[200:])
    assert spearman_scorer(reg, X[200:], y[200:]) == pytest.approx(stats.spearmanr(y[200:], predicted).statistic)
    assert pearson_scorer(reg, X[200:], y[200:]) == pytest.approx(stats.pearsonr(y[200:], predicted).statistic)
    assert spearman_correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    scores = cross_val_score(Object2VecRegressor(**FAST), X, y, cv=2, scoring=spearman_scorer)
    assert scores.min() > 0.5  # the planted score a + 2b is learnable
