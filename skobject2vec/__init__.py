"""skobject2vec: scikit-learn compatible Object2Vec on PyTorch.

Learn embeddings of pairs of token-id sequences (user-item, sentence-sentence,
entity-entity) with one estimator that drops into scikit-learn code.
"""

from ._embedding_api import most_similar, similarity
from ._version import __version__
from .estimators import Object2VecClassifier, Object2VecRegressor, from_sagemaker_hyperparameters
from .evaluation import make_hits_at_k_scorer, make_mrr_scorer, pearson_scorer, spearman_scorer
from .io.artifact import load, save
from .text import TextPairTokenizer

__all__ = [
    "Object2VecClassifier",
    "Object2VecRegressor",
    "from_sagemaker_hyperparameters",
    "TextPairTokenizer",
    "load",
    "save",
    "similarity",
    "most_similar",
    "make_hits_at_k_scorer",
    "make_mrr_scorer",
    "spearman_scorer",
    "pearson_scorer",
    "__version__",
]
