"""Shared fixtures: planted-rule data sets (from skobject2vec.datasets) and their JSON Lines files."""

import pytest
import torch

from skobject2vec.data.jsonlines import write_records
from skobject2vec.datasets import make_topic_pairs

# Tiny models are faster on one thread, and joblib workers must not oversubscribe 2 cores.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def topic_data():
    X, y = make_topic_pairs(2400, seed=0)
    return X[:2000], y[:2000], X[2000:], y[2000:]


@pytest.fixture(scope="module")
def topic_files(tmp_path_factory):
    """Topic pairs as JSON Lines files: (train path, validation path, (X, y))."""
    X, y = make_topic_pairs(2500, seed=1)
    folder = tmp_path_factory.mktemp("topics")
    write_records(X[:2000], folder / "train.jsonl", labels=y[:2000].tolist())
    write_records(X[2000:], folder / "val.jsonl", labels=y[2000:].tolist())
    return folder / "train.jsonl", folder / "val.jsonl", (X, y)
