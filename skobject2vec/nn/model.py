"""The Object2Vec pair network: two token tables, two encoders, a comparator, an MLP."""

from __future__ import annotations

import torch
from torch import nn

from .comparator import Comparator
from .encoders import build_encoder

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "linear": nn.Identity}


def lengths_to_mask(lengths: torch.Tensor, max_len: int, device) -> torch.Tensor:
    positions = torch.arange(max_len, device=device)
    return positions.unsqueeze(0) < lengths.to(device, non_blocking=True).unsqueeze(1)


class Object2VecNet(nn.Module):
    """Pair network. Built from a JSON-serialisable ``config`` (kept as ``self.config``),
    so that a saved artifact can rebuild it without unpickling anything.

    Token tables have ``vocab_size + 1`` rows: the last one is the unknown-token row
    that ids unseen in training are mapped to at predict time.

    Parameters (keys of ``config``)
    -------------------------------
    vocab_sizes, token_dims, networks, layers, filter_widths : pairs, one per side
    enc_dim : int
    comparator : tuple of str
    mlp_layers, mlp_dim : int
    mlp_activation : {"tanh", "relu", "linear"}
    dropout : float
    n_outputs : int
        Number of classes, or 1 for regression.
    tied : bool
        One token table shared by both sides.
    sparse : bool
        Sparse gradients on the token tables.
    """

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        c = self.config
        self.tied = bool(c["tied"])
        self.token_embedding0 = nn.Embedding(c["vocab_sizes"][0] + 1, c["token_dims"][0], sparse=c["sparse"])
        self.token_embedding1 = (
            None if self.tied
            else nn.Embedding(c["vocab_sizes"][1] + 1, c["token_dims"][1], sparse=c["sparse"])
        )
        self.encoder0 = build_encoder(c["networks"][0], c["token_dims"][0], c["enc_dim"],
                                      c["layers"][0], c["filter_widths"][0])
        self.encoder1 = build_encoder(c["networks"][1], c["token_dims"][1], c["enc_dim"],
                                      c["layers"][1], c["filter_widths"][1])
        self.comparator = Comparator(c["comparator"], c["enc_dim"])
        layers, width = [], self.comparator.out_dim
        if c["dropout"] > 0:
            layers.append(nn.Dropout(c["dropout"]))
        for _ in range(c["mlp_layers"]):
            layers += [nn.Linear(width, c["mlp_dim"]), _ACTIVATIONS[c["mlp_activation"]]()]
            if c["dropout"] > 0:
                layers.append(nn.Dropout(c["dropout"]))
            width = c["mlp_dim"]
        self.mlp = nn.Sequential(*layers)
        self.output = nn.Linear(width, c["n_outputs"])
        for table in (self.token_embedding0, self.token_embedding1):
            if table is not None:
                # N(0, 1/dim) instead of torch's N(0, 1): token vectors of unit expected norm.
                # Measured on planted-topic pairs: hcnn test accuracy 0.66-0.80 -> 0.98,
                # bilstm and pooled no worse (see tests/test_estimators.py).
                nn.init.normal_(table.weight, std=table.embedding_dim ** -0.5)

    def token_table(self, side: int) -> nn.Embedding:
        return self.token_embedding0 if side == 0 or self.tied else self.token_embedding1

    def encode(self, side: int, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Embed one side: ``ids`` (B, L) padded token ids, ``lengths`` (B,) on CPU."""
        mask = lengths_to_mask(lengths, ids.size(1), ids.device)
        tokens = self.token_table(side)(ids)
        encoder = self.encoder0 if side == 0 else self.encoder1
        return encoder(tokens, mask, lengths)

    def forward(self, ids0, lengths0, ids1, lengths1) -> torch.Tensor:
        """Logits (B, n_classes) or scores (B, 1)."""
        e0 = self.encode(0, ids0, lengths0)
        e1 = self.encode(1, ids1, lengths1)
        return self.output(self.mlp(self.comparator(e0, e1)))
