"""Evaluation: ranking metrics (filtered MRR, Hits@k) and correlation scorers."""

from .metrics import (
                      RankingScorer,
                      hits_at_k,
                      make_hits_at_k_scorer,
                      make_mrr_scorer,
                      mean_reciprocal_rank,
                      pearson_correlation,
                      pearson_scorer,
                      ranks_of_true_pairs,
                      spearman_correlation,
                      spearman_scorer,
)

__all__ = ["RankingScorer", "hits_at_k", "make_hits_at_k_scorer", "make_mrr_scorer", "mean_reciprocal_rank",
           "pearson_correlation", "pearson_scorer", "ranks_of_true_pairs", "spearman_correlation",
           "spearman_scorer"]
