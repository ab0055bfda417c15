"""Settings shared by the tests (fixtures live in conftest.py; planted data in skobject2vec.datasets)."""

#: A small configuration that trains in about a second; tests override what they exercise.
FAST = dict(enc0_network="pooled_embedding", enc_dim=16, enc0_token_embedding_dim=16, mlp_dim=32, mlp_layers=1,
            mlp_activation="relu", dropout=0.0, validation_fraction=None, epochs=8, mini_batch_size=64,
            learning_rate=0.01, random_state=0)
