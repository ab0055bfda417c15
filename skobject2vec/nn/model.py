"""The Object2Vec pair network: two token tables, two encoders, a comparator, an MLP."""

from __future__ import annotations

import copy
from typing import Any, NotRequired, TypedDict, TypeGuard, cast

import torch
from torch import nn

from .comparator import Comparator
from .dropout import FastDropout
from .encoders import HCNNEncoder, PooledEmbeddingEncoder, build_encoder
from .invariant import ChunkedConv1d, ChunkedLinear, WideActivation
from .segments import segment_max

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "linear": nn.Identity}


def lengths_to_mask(lengths: torch.Tensor, max_len: int, device: torch.device) -> torch.Tensor:
    positions = torch.arange(max_len, device=device)
    return positions.unsqueeze(0) < lengths.to(device, non_blocking=True).unsqueeze(1)


def _padded(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, longest) ids from the records' tokens one after another; padding holds 0 (masked)."""
    mask = lengths_to_mask(lengths, int(lengths.max()) if lengths.numel() else 1, tokens.device)
    ids = tokens.new_zeros(mask.shape)
    ids[mask] = tokens
    return ids


def _table(rows: int, dim: int, sparse: bool) -> nn.Embedding:
    # allocated uninitialised: Object2VecNet draws the rows once (torch's own N(0, 1) draw would be
    # replaced anyway, and costs as much as the fit's first steps at 150,000 ids)
    return nn.Embedding(rows, dim, sparse=sparse, _weight=torch.empty(rows, dim))


class NetworkConfig(TypedDict):
    """The keys of a network's ``config``, declared once: :func:`skobject2vec._fit.network_config` builds it,
    :class:`Object2VecNet` reads it, the artifact stores it (and checks it by building the network), ONNX
    export and the server read it from ``net_.config``. Meanings: :class:`Object2VecNet`."""

    vocab_sizes: list[int]
    token_dims: list[int]
    networks: list[str]
    layers: list[int]
    filter_widths: list[int]
    enc_dim: int
    comparator: list[str]
    mlp_layers: int
    mlp_dim: int
    mlp_activation: str
    dropout: float
    n_outputs: int
    tied: bool
    shared: NotRequired[bool]  # artifacts written before 0.2 have no key
    sparse: bool
    pooling: NotRequired[str]  # artifacts written before 0.2 have no key
    sparse_tables: NotRequired[list[bool]]  # older artifacts have no key: every table as sparse says


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
    shared : bool, optional (default False)
        enc1 *is* enc0: one token table and one encoder module, so both sides live in
        one embedding space (a Siamese / bi-encoder). Implies ``tied``.
    sparse : bool
        Sparse gradients on the token tables.
    sparse_tables : list of bool, optional (default both True)
        With ``sparse``, which of the two tables (one per side; the first where they are
        tied) take sparse gradients: "auto" storage keeps a small table dense beside a
        large sparse one (a user table of 672 rows beside 9,067 items).
    pooling : {"mean", "max", "head_mean"}, optional (default "mean")
        How pooled_embedding encoders pool the token vectors (artifacts written
        before 0.2 have no key: mean, SageMaker's pooling).
    """

    def __init__(self, config: NetworkConfig | dict[str, Any]):
        super().__init__()
        self.config = cast(NetworkConfig, dict(config))
        c = self.config
        self.shared = bool(c.get("shared", False))  # artifacts written before 0.2 have no key
        self.tied = bool(c["tied"]) or self.shared
        sparse = [c["sparse"] and side for side in c.get("sparse_tables", [True, True])]
        self.token_embedding0 = _table(c["vocab_sizes"][0] + 1, c["token_dims"][0], sparse[0])
        self.token_embedding1 = None if self.tied else _table(c["vocab_sizes"][1] + 1, c["token_dims"][1], sparse[1])
        pooling = c.get("pooling", "mean")
        self.encoder0 = build_encoder(c["networks"][0], c["token_dims"][0], c["enc_dim"],
                                      c["layers"][0], c["filter_widths"][0], pooling)
        # A shared encoder is registered once (state_dict and safetensors hold each tensor once).
        self.encoder1 = None if self.shared else build_encoder(
            c["networks"][1], c["token_dims"][1], c["enc_dim"], c["layers"][1], c["filter_widths"][1], pooling)
        self.comparator = Comparator(c["comparator"], c["enc_dim"])
        layers: list[nn.Module]
        layers, width = [], self.comparator.out_dim
        if c["dropout"] > 0:
            layers.append(FastDropout(c["dropout"]))
        for _ in range(c["mlp_layers"]):
            layers += [nn.Linear(width, c["mlp_dim"]), _ACTIVATIONS[c["mlp_activation"]]()]
            if c["dropout"] > 0:
                layers.append(FastDropout(c["dropout"]))
            width = c["mlp_dim"]
        self.mlp = nn.Sequential(*layers)
        self.output = nn.Linear(width, c["n_outputs"])
        for table in (self.token_embedding0, self.token_embedding1):
            # Not on the meta device (a loaded artifact's shapes are checked on a network built there): there
            # torch draws through its reference implementation, whose first call imports torch._dynamo (1.2 s).
            if table is not None and table.weight.device.type != "meta":
                # N(0, 1/dim) instead of torch's N(0, 1): token vectors of unit expected norm, which
                # hcnn needs to learn planted-topic pairs (tests/test_estimators.py holds the check).
                nn.init.normal_(table.weight, std=table.embedding_dim ** -0.5)

    def token_table(self, side: int) -> nn.Embedding:
        # the second table exists unless the sides are tied
        return self.token_embedding0 if side == 0 or self.tied else cast(nn.Embedding, self.token_embedding1)

    def encoder(self, side: int) -> nn.Module:
        # the second encoder exists unless it is shared
        return self.encoder0 if side == 0 or self.shared else cast(nn.Module, self.encoder1)

    def _encode(self, side: int, ids: torch.Tensor, lengths: torch.Tensor, with_tokens: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        encoder, compute = self.encoder(side), self.output.weight.dtype
        table = self.token_table(side)
        # a pooled encoder without projection, every record with a token: it can pool the valid tokens alone
        pooling = encoder.pooling if _pools_only(encoder) else None
        pools_alone = not with_tokens and pooling is not None and bool((lengths > 0).all())
        # A mean or a max reduced per record from the valid tokens alone (segment_max, segment_reduce), so
        # that neither the forward nor the backward pass touches padded (B, L, D) tensors (on STS-B the
        # masked max and its backward were a quarter of a step).
        reduces_valid = pools_alone and _pools_valid_tokens(encoder)
        if ids.dim() == 1:  # the records' tokens one after another (flat_sides): no padding built
            if not reduces_valid:
                ids = _padded(ids, lengths)
            elif ids.numel() == lengths.numel():  # one token per record: its row is every pooling of it
                return table(ids).to(compute), None, None
            else:
                return self._pool_valid(table, pooling, ids, lengths).to(compute), None, None
        if pools_alone and ids.size(1) == 1:
            # one token per record (a user, an item): every pooling is the token's own row, exactly
            return table(ids[:, 0]).to(compute), None, None
        mask = lengths_to_mask(lengths, ids.size(1), ids.device)
        if (pools_alone and pooling == "head_mean" and table.weight.dtype == compute
                and 2 * int(lengths.sum()) < ids.numel()):
            # An id and its context (a user and the items the user rated: hundreds of tokens, a few thousand
            # for some users), in a batch mostly padding: the id's row plus the mean of the context's rows,
            # reduced per record from the valid tokens alone. Padded, a batch held 256 x its longest history
            # x the row width: 5x slower with MovieLens users' full histories (a fifth of the slots valid).
            # Where most slots are valid (30 sampled items each), the padded pooling is faster (2.4 vs 3.4 ms).
            # embedding_bag gathers and sums in one pass, with no (tokens x width) tensor in between: 2.3x
            # faster than a lookup and segment_reduce over 117,000 context tokens
            sizes = lengths.to(ids.device) - 1
            offsets = torch.zeros(len(sizes) + 1, dtype=torch.int64, device=ids.device)
            torch.cumsum(sizes, 0, out=offsets[1:])
            context = ids[:, 1:][mask[:, 1:]]
            rest = nn.functional.embedding_bag(context, table.weight, offsets, mode="sum", sparse=table.sparse,
                                               include_last_offset=True)
            return table(ids[:, 0]) + rest / sizes.clamp_min(1).unsqueeze(1).to(rest.dtype), None, None
        if reduces_valid:
            return self._pool_valid(table, pooling, ids[mask], lengths).to(compute), None, None
        tokens = table(ids)
        if tokens.dtype != compute and _pools_exactly(encoder, ids.size(1)):
            # widened_copy: a max, or the mean of one token, is exact in the table's dtype; widen after it
            return encoder(tokens, mask, lengths).to(compute), tokens, mask
        # The tables may be narrower than the rest (see widened_copy); widening a row is exact.
        tokens = tokens.to(compute)
        return encoder(tokens, mask, lengths), tokens, mask

    @staticmethod
    def _pool_valid(table: nn.Embedding, pooling: str | None, tokens: torch.Tensor, lengths: torch.Tensor
                    ) -> torch.Tensor:
        """The ``pooling`` ("max" or "mean") of each record's rows, from its valid ``tokens`` one after another."""
        counts = lengths.to(tokens.device)
        if pooling == "max":
            return segment_max(table(tokens), counts)
        if torch.is_grad_enabled() and table.weight.requires_grad:
            # training keeps the lookup and segment_reduce: their gradients are the ones the defaults were
            # measured with (with embedding_bag's, digit pairs scored 0.895 against 0.900 over seeds 0-2)
            return torch.segment_reduce(table(tokens), "mean", lengths=counts)
        # Inference: embedding_bag gathers and averages in one pass, each record's rows summed in their own
        # order (so the same bits in any batch): 0.37 against 4.2 ms for a lookup and segment_reduce (1,024
        # records of 5-40 tokens x 64, one thread), the same floats in that measurement
        offsets = torch.zeros(len(counts) + 1, dtype=torch.int64, device=tokens.device)
        torch.cumsum(counts, 0, out=offsets[1:])
        return nn.functional.embedding_bag(tokens, table.weight, offsets, mode="mean", include_last_offset=True)

    def flat_sides(self) -> tuple[bool, bool]:
        """Per side, whether its encoder reads the records' valid tokens one after another, without
        padding (``Ragged.tokens``; ``ids`` of one dimension in :meth:`encode` and ``forward``): a pooled
        encoder without projection taking a max or a mean. Any encoder takes
        such ids (the others pad them); for these the padded batch would only be taken apart again."""
        return _pools_valid_tokens(self.encoder(0)), _pools_valid_tokens(self.encoder(1))

    def encode(self, side: int, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Embed one side: ``ids`` (B, L) padded token ids, or, where :meth:`flat_sides` says, the
        valid tokens one after another (total,); ``lengths`` (B,) on CPU."""
        return self._encode(side, ids, lengths)[0]

    def forward(self, ids0: torch.Tensor, lengths0: torch.Tensor, ids1: torch.Tensor, lengths1: torch.Tensor,
                with_row_penalty: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, n_classes) or scores (B, 1).

        With ``with_row_penalty``, also the per-record squared L2 norm of the token
        rows the record uses (mean over its tokens, summed over both sides), shape
        (B,): matrix factorisation's regulariser, which touches only the rows in the
        batch, so it works with sparse updates too.
        """
        e0, tokens0, mask0 = self._encode(0, ids0, lengths0, with_tokens=with_row_penalty)
        e1, tokens1, mask1 = self._encode(1, ids1, lengths1, with_tokens=with_row_penalty)
        out: torch.Tensor = self.output(self.mlp(self.comparator(e0, e1)))
        if not with_row_penalty:
            return out
        # with_tokens=True: _encode returned the tokens and masks
        assert tokens0 is not None and mask0 is not None and tokens1 is not None and mask1 is not None
        penalty = sum((t.pow(2).sum(-1) * m).sum(1) / m.sum(1).clamp_min(1)
                      for t, m in ((tokens0, mask0), (tokens1, mask1)))
        return out, cast(torch.Tensor, penalty)  # a sum of two tensors


def _pools_only(encoder: nn.Module) -> TypeGuard[PooledEmbeddingEncoder]:
    """Whether ``encoder`` is a pooled encoder without projection: it only pools its token rows."""
    return isinstance(encoder, PooledEmbeddingEncoder) and isinstance(encoder.proj, nn.Identity)


def _pools_valid_tokens(encoder: nn.Module) -> bool:
    """Whether ``encoder`` can pool each record's valid tokens alone (``Object2VecNet._pool_valid``): a
    pooled encoder without projection taking a max or a mean, in the table's dtype (widened after it in
    ``widened_copy``: a max is exact there, and a mean reduced per record, each record's rows summed in
    their own order by segment_reduce in training and embedding_bag at inference, is the same bits in
    any batch)."""
    return _pools_only(encoder) and encoder.pooling in ("max", "mean")


def _pools_exactly(encoder: nn.Module, length: int) -> TypeGuard[PooledEmbeddingEncoder]:
    """Whether ``encoder`` computes the same bits in any batch without matrix products: it only
    pools, and takes a max or the mean of single tokens."""
    return _pools_only(encoder) and (encoder.pooling == "max" or length == 1)


def _copy_sharing_tables(net: Object2VecNet) -> Object2VecNet:
    # the tables stay shared and unconverted: they can hold millions of rows
    tables = [t for t in (net.token_embedding0, net.token_embedding1) if t is not None]
    return copy.deepcopy(net, memo={id(t): t for t in tables})


def invariant_copy(net: Object2VecNet) -> Object2VecNet:
    """A float32 copy of ``net`` for inference whose outputs are the same bits in any batch, sharing its
    token tables; for pooled and hcnn encoders (bilstm: :func:`widened_copy`).

    Why: a float32 matrix product's rounding depends on the shape of the batch (BLAS picks its
    blocking, kernels and thread split by shape, and differently on each CPU), so a record's float32
    output would move with the records beside it. Every product of the copy (the MLP, the output
    layer, a pooled encoder's projection, hcnn's convolutions and projection) runs in fixed-shape
    float32 chunks (``skobject2vec.nn.invariant``), where the CPU's kernels are measured to give a
    row the same bits at every position of a chunk, and in float64 otherwise. Everything else is per
    record: lookups, a max or a mean over each record's own rows, the comparator's elementwise
    operations, activations. Against float64 throughout (the copy before session 34), predict with
    a relu MLP ran at 0.47x a plain float32 forward, and hcnn at 0.27x.
    """
    inference = _copy_sharing_tables(net)
    for module in list(inference.modules()):
        if isinstance(module, (PooledEmbeddingEncoder, HCNNEncoder)) and type(module.proj) is nn.Linear:
            module.proj = ChunkedLinear.of(module.proj)
        if isinstance(module, HCNNEncoder):
            module.convs = nn.ModuleList(ChunkedConv1d(cast(nn.Conv1d, conv)) for conv in module.convs)
    _chunk_mlp(inference)
    if type(inference.output) is nn.Linear:
        inference.output = ChunkedLinear.of(inference.output)
    return inference.eval()


def widened_copy(net: Object2VecNet, dtype: torch.dtype = torch.float64) -> Object2VecNet:
    """A copy of ``net`` whose encoders and comparator compute in ``dtype``, sharing its token tables:
    inference for networks with a bilstm encoder (an LSTM is no row-wise product; the others:
    :func:`invariant_copy`).

    Computed in float64 from the same float32 weights and rounded back to float32, the result is
    the float32 value of a product exact to ~1e-16: the same bits whatever the batch, unless the
    exact value sits within ~1e-16 of a float32 rounding boundary (about one value in 10^9). A
    looked-up row is widened, exactly, where the network looks it up. The MLP runs as in
    :func:`invariant_copy`; the output layer in ``dtype``.
    """
    wide = _copy_sharing_tables(net)
    for name, child in wide.named_children():
        if not name.startswith("token_embedding"):
            child.to(dtype)
    _chunk_mlp(wide)
    return wide.eval()


def _chunk_mlp(inference: Object2VecNet) -> None:
    """The MLP of an inference copy as batch-invariant chunked float32 layers, a linear MLP and the
    output layer folded into one map first (mlp_dim wide, the MLP is most of a pooled network's
    arithmetic)."""
    if inference.config["mlp_activation"] == "linear":
        _fold_affine_layers(inference)
    inference.mlp = nn.Sequential(*(ChunkedLinear.of(layer) if type(layer) is nn.Linear
                                    else WideActivation(layer) if isinstance(layer, nn.Tanh) else layer
                                    for layer in inference.mlp))


def _fold_affine_layers(inference: Object2VecNet) -> None:
    """Fold a linear MLP and the output layer of an inference copy into one affine map.

    Why: with ``mlp_activation="linear"`` (SageMaker's default) and dropout idle at inference,
    ``output(mlp(x))`` is ``W x + b`` with ``W = W_out ... W_1``; one (batch x comparator width) x
    (n_outputs) product replaces ``mlp_layers`` products of the MLP's width (2 of 256 x 256 per
    record: half of predict's time in float64). Composed once in float64, the map is exact to
    ~1e-16; a float32 copy runs it as a :class:`~skobject2vec.nn.invariant.ChunkedLinear` (its outputs
    agree with the layers run one by one to float32's precision), a float64 copy as it is.
    """
    weight, bias = inference.output.weight.detach().double(), inference.output.bias.detach().double()
    for layer in reversed(inference.mlp):
        if isinstance(layer, nn.Linear):
            bias = bias + weight @ layer.bias.detach().double()
            weight = weight @ layer.weight.detach().double()
        elif not isinstance(layer, (nn.Identity, nn.Dropout)):  # FastDropout is a Dropout: idle in eval
            return  # not an affine chain (a layer added later): keep the layers
    folded: nn.Linear
    if inference.output.weight.dtype == torch.float64:
        folded = nn.Linear(weight.shape[1], weight.shape[0], dtype=torch.float64)
        with torch.no_grad():
            folded.weight.copy_(weight)
            folded.bias.copy_(bias)
    else:
        folded = ChunkedLinear(weight, bias)
    inference.mlp, inference.output = nn.Sequential(), folded
