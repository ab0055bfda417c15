"""Shared test fixtures: small planted-rule data sets and a fast estimator configuration."""

import numpy as np
import pytest
import torch

# Tiny models are faster on one thread, and joblib workers must not oversubscribe 2 cores.
torch.set_num_threads(1)

#: A small configuration that trains in about a second; tests override what they exercise.
FAST = dict(enc0_network="pooled_embedding", enc_dim=16, enc0_token_embedding_dim=16, mlp_dim=32, mlp_layers=1,
            mlp_activation="relu", dropout=0.0, validation_fraction=None, epochs=8, mini_batch_size=64,
            learning_rate=0.01, random_state=0)


def topic_pairs(n, seed=0, n_topics=4, tokens_per_topic=25, min_len=2, max_len=8):
    """Planted rule a dual encoder can represent: label 1 iff in0 and in1 are drawn
    from the same topic (each topic owns a disjoint block of token ids)."""
    rng = np.random.default_rng(seed)
    t0 = rng.integers(0, n_topics, n)
    same = rng.random(n) < 0.5
    t1 = np.where(same, t0, (t0 + rng.integers(1, n_topics, n)) % n_topics)
    X = [
        {"in0": (a * tokens_per_topic + rng.integers(0, tokens_per_topic, rng.integers(min_len, max_len))).tolist(),
         "in1": (b * tokens_per_topic + rng.integers(0, tokens_per_topic, rng.integers(min_len, max_len))).tolist()}
        for a, b in zip(t0, t1)
    ]
    return X, same.astype(int)


def score_pairs(n, seed=0, n_topics=5, tokens_per_topic=20):
    """Planted score: in0 from topic a, in1 from topic b, target = a + b (plus noise)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n_topics, n)
    b = rng.integers(0, n_topics, n)
    X = [
        {"in0": (i * tokens_per_topic + rng.integers(0, tokens_per_topic, rng.integers(1, 6))).tolist(),
         "in1": (j * tokens_per_topic + rng.integers(0, tokens_per_topic, rng.integers(1, 6))).tolist()}
        for i, j in zip(a, b)
    ]
    return X, (a + 2.0 * b + rng.normal(0, 0.1, n))


@pytest.fixture(scope="session")
def topic_data():
    X, y = topic_pairs(2400, seed=0)
    return X[:2000], y[:2000], X[2000:], y[2000:]
