"""Settings shared by the tests (fixtures live in conftest.py; planted data in skobject2vec.datasets)."""

import numpy as np

#: A small configuration that trains in about a second; tests override what they exercise.
FAST = dict(enc0_network="pooled_embedding", enc_dim=16, enc0_token_embedding_dim=16, mlp_dim=32, mlp_layers=1,
            mlp_activation="relu", dropout=0.0, validation_fraction=None, epochs=8, mini_batch_size=64,
            learning_rate=0.01, random_state=0)


def relation_pairs(n_types=4, per_type=8, n_relations=3, per_query=20, seed=0):
    """Planted link prediction: records ``{"in0": [head, relation], "in1": [tail]}`` (relation ``r`` is
    token ``n_entities + r``), label 1 when the tail's type is ``(type(head) + r + 1) % n_types``:
    the answer depends on head and relation together. Entities ``e`` have type ``e // per_type``."""
    rng = np.random.default_rng(seed)
    n_entities = n_types * per_type
    kind = np.arange(n_entities) // per_type
    X, y = [], []
    for head in range(n_entities):
        for r in range(n_relations):
            for tail in rng.integers(0, n_entities, per_query).tolist():
                X.append({"in0": [head, n_entities + r], "in1": [tail]})
                y.append(int(kind[tail] == (kind[head] + r + 1) % n_types))
    return X, np.array(y)
