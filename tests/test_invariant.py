"""Batch-invariant float32 products (nn.invariant): measured before they are relied on, float64 otherwise."""

import numpy as np
import pytest
import torch

from skobject2vec import Object2VecClassifier, Object2VecRegressor, inference
from skobject2vec.nn import invariant
from skobject2vec.nn.invariant import (
    CHUNK_ROWS,
    TAIL_ROWS,
    ChunkedConv1d,
    ChunkedLinear,
    WideActivation,
    chunked_product,
    rows_independent,
)


def _reordered_beyond(position):
    # a kernel that sums in another order for the rows from `position` of a chunk on, as some CPUs' edge tiles do
    def product(bias, rows, weight_t):
        out = torch.addmm(bias, rows, weight_t)
        out[position:] = torch.addmm(bias, rows[position:].flip(1), weight_t.flip(0))
        return out
    return product


def _reordered_in_short_calls(bias, rows, weight_t):
    # a kernel that takes another path for short products (a vector routine, another tile)
    if len(rows) < CHUNK_ROWS:
        return torch.addmm(bias, rows.flip(1), weight_t.flip(0))
    return torch.addmm(bias, rows, weight_t)


def _layer(seed=0, inputs=96, outputs=80):
    torch.manual_seed(seed)
    return torch.nn.Linear(inputs, outputs)


def test_the_measurement_catches_a_kernel_whose_rows_depend_on_their_position():
    layer = _layer()
    weight_t, bias = layer.weight.detach().t().contiguous(), layer.bias.detach()
    assert rows_independent(weight_t, bias)[0]  # torch's kernels on this CPU
    assert rows_independent(weight_t, bias, _reordered_beyond(CHUNK_ROWS - 4)) == (False, ())
    assert rows_independent(weight_t, bias, _reordered_in_short_calls) == (True, ())


def _reordered_in_calls_of(rows_count):
    def product(bias, rows, weight_t):
        if len(rows) == rows_count:
            return torch.addmm(bias, rows.flip(1), weight_t.flip(0))
        return torch.addmm(bias, rows, weight_t)
    return product


def test_only_the_tail_sizes_that_match_a_full_chunk_are_used():
    layer = _layer()
    weight_t, bias = layer.weight.detach().t().contiguous(), layer.bias.detach()
    assert rows_independent(weight_t, bias, _reordered_in_calls_of(4)) == (True, (16,))
    assert rows_independent(weight_t, bias, _reordered_in_calls_of(16)) == (True, (4,))
    x = torch.randn(CHUNK_ROWS + 37, 96)
    for kernel, tails in ((_reordered_in_calls_of(4), (16,)), (_reordered_in_calls_of(16), (4,))):
        whole = chunked_product(x, weight_t, bias, tails, kernel)
        for size in (1, 3, 5, 21):
            pieces = torch.cat([chunked_product(x[i:i + size], weight_t, bias, tails, kernel)
                                for i in range(0, len(x), size)])
            assert torch.equal(pieces, whole), (tails, size)


def test_without_tail_chunks_a_row_alone_is_computed_as_in_a_full_chunk():
    # where short products sum in another order, the remainder is padded to a full chunk instead
    layer = _layer()
    weight_t, bias = layer.weight.detach().t().contiguous(), layer.bias.detach()
    x = torch.randn(3 * CHUNK_ROWS + 5, 96)
    whole = chunked_product(x, weight_t, bias, (), _reordered_in_short_calls)
    alone = torch.cat([chunked_product(x[i:i + 1], weight_t, bias, (), _reordered_in_short_calls)
                       for i in range(0, len(x), 41)])
    assert torch.equal(alone, whole[::41])
    with_tails = torch.cat([chunked_product(x[i:i + 1], weight_t, bias, TAIL_ROWS, _reordered_in_short_calls)
                            for i in range(0, len(x), 41)])
    assert not torch.equal(with_tails, whole[::41])  # what the measurement guards against


def test_a_chunked_layer_computes_the_float32_linear_map_the_same_in_any_batch():
    layer = _layer()
    chunked = ChunkedLinear.of(layer)
    x = torch.randn(700, 96)
    whole = chunked(x)
    assert whole.dtype == torch.float32
    torch.testing.assert_close(whole, layer(x).detach(), rtol=1e-5, atol=1e-5)
    assert torch.equal(chunked(x.double()), whole.double())  # float64 in (widened_copy): the same float32 values
    for size in (1, 7, 16, 300):
        pieces = torch.cat([chunked(x[i:i + size]) for i in range(0, len(x), size)])
        assert torch.equal(pieces, whole), size


def test_a_layer_falls_back_to_float64_where_the_kernels_fail_the_measurement(monkeypatch):
    monkeypatch.setattr(invariant, "rows_independent", lambda weight_t, bias: (False, ()))
    layer = _layer()
    chunked = ChunkedLinear.of(layer)
    x = torch.randn(300, 96).double()
    out = chunked(x)
    assert not torch.equal(out.float().double(), out)  # float64 arithmetic, not float32
    torch.testing.assert_close(out, torch.addmm(layer.bias.double(), x, layer.weight.double().t()).detach(),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("measured", [True, False])
def test_a_relu_mlp_predicts_the_same_bits_alone_and_together_either_way(monkeypatch, n_threads, measured):
    # the estimators' default activation (relu) with the float32 products, and with the float64 fall-back
    if not measured:
        monkeypatch.setattr(invariant, "rows_independent", lambda weight_t, bias: (False, ()))
    inference._INFERENCE_COPIES.clear()
    rng = np.random.default_rng(0)
    X = rng.integers(0, 40, size=(1200, 2))
    y = (X[:, 0] % 5) / 4.0 + (X[:, 1] % 3) / 2.0
    model = Object2VecRegressor(random_state=0, epochs=2, mlp_layers=2, n_threads=n_threads).fit(X, y)
    runner = inference.inference_net(model.net_)[0]
    layers = [layer for layer in runner.mlp if isinstance(layer, ChunkedLinear)]
    assert layers and not any(type(layer) is torch.nn.Linear for layer in runner.mlp)
    full = model.predict(X)
    for size in (1, 13, 300):
        assert np.array_equal(np.concatenate([model.predict(X[i:min(i + size, 600)]) for i in range(0, 600, size)]),
                              full[:600]), size
    assert all(layer.products.verdicts for layer in layers)  # measured at the thread count predict ran at
    inference._INFERENCE_COPIES.clear()


@pytest.mark.parametrize("mlp_dim", [20, 256])
def test_a_classifier_with_a_tanh_mlp_runs_its_layers_chunked(mlp_dim):
    # a width of 20 leaves the last 4 of each row's elements to torch's scalar tanh at one record, not in a batch
    X = np.random.default_rng(1).integers(0, 30, size=(400, 2))
    y = X[:, 0] % 2
    clf = Object2VecClassifier(random_state=0, epochs=1, mlp_activation="tanh", mlp_layers=2,
                               mlp_dim=mlp_dim).fit(X, y)
    runner = inference.inference_net(clf.net_)[0]
    assert sum(isinstance(layer, ChunkedLinear) for layer in runner.mlp) == 2
    assert sum(isinstance(layer, WideActivation) for layer in runner.mlp) == 2
    full = clf.predict_proba(X)
    assert np.array_equal(np.vstack([clf.predict_proba(X[i:i + 1]) for i in range(50)]), full[:50])


@pytest.mark.parametrize("width, padding", [(3, 1), (2, 0), (5, 0), (1, 0)])
def test_a_chunked_convolution_is_the_convolution_and_the_same_for_a_record_in_any_batch(width, padding):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(12, 20, width, padding=padding)
    lengths = torch.randint(1, 30, (150,))
    hidden = torch.randn(150, 12, 40 + width) * (torch.arange(40 + width) < lengths[:, None] + width).unsqueeze(1)
    chunked = ChunkedConv1d(conv)
    whole = chunked(hidden)
    torch.testing.assert_close(whole, conv(hidden).detach(), rtol=1e-5, atol=1e-5)
    for i in (0, 7, 149):
        alone = chunked(hidden[i:i + 1])
        assert torch.equal(alone, whole[i:i + 1]), i
    assert torch.equal(torch.cat([chunked(hidden[i:i + 13]) for i in range(0, 150, 13)]), whole)


@pytest.mark.parametrize("network", ["hcnn", "pooled_embedding"])
def test_the_inference_copy_computes_in_float32_and_runs_every_product_in_chunks(network, monkeypatch):
    from skobject2vec.datasets import make_topic_pairs
    from skobject2vec.nn.model import widened_copy

    X, y = make_topic_pairs(300)
    clf = Object2VecClassifier(random_state=0, epochs=1, enc0_network=network, enc_dim=16,
                               enc0_token_embedding_dim=8, mlp_layers=1).fit(X, y)
    inference._INFERENCE_COPIES.clear()
    runner = inference.inference_net(clf.net_)[0]
    assert not [m for m in runner.modules() if type(m) in (torch.nn.Linear, torch.nn.Conv1d)]  # all chunked
    assert {p.dtype for p in runner.parameters()} == {torch.float32}
    chunked = clf.predict_proba(X)
    monkeypatch.setattr(inference, "invariant_copy", widened_copy)  # float64 throughout
    inference._INFERENCE_COPIES.clear()
    np.testing.assert_allclose(chunked, clf.predict_proba(X), rtol=1e-5, atol=1e-6)
    inference._INFERENCE_COPIES.clear()


@pytest.mark.parametrize("settings", [
    dict(enc0_network="pooled_embedding", enc0_token_embedding_dim=12, enc_dim=10, mlp_layers=0),  # projection
    dict(enc0_network="hcnn", enc0_layers=2, enc0_cnn_filter_width=4, enc_dim=9, mlp_layers=1, mlp_dim=7),
    dict(enc0_network="hcnn", enc0_cnn_filter_width=5, comparator_list="concat", mlp_activation="tanh"),
    dict(enc0_network="pooled_embedding", pooling="max", mlp_activation="linear", mlp_layers=3, mlp_dim=5),
    dict(enc0_network="bilstm", enc_dim=6, mlp_layers=1, mlp_dim=5),
])
def test_unusual_networks_predict_and_embed_the_same_bits_in_any_batch(settings, monkeypatch):
    # odd widths, even and wide filters, projections, several conv layers, a linear chain, bilstm's float64 copy
    from skobject2vec.datasets import make_topic_pairs
    from skobject2vec.nn.model import widened_copy

    X, y = make_topic_pairs(260, seed=4)
    X[3] = {"in0": [7], "in1": [8, 9]}  # one token against a filter five wide
    base = dict(random_state=0, epochs=1, enc0_token_embedding_dim=settings.get("enc_dim", 8), enc_dim=8)
    clf = Object2VecClassifier(**dict(base, **settings)).fit(X, y)
    inference._INFERENCE_COPIES.clear()
    full, embedded = clf.predict_proba(X), clf.transform(X)
    for size in (1, 5, 19):
        pieces = np.vstack([clf.predict_proba(X[i:i + size]) for i in range(0, 120, size)])
        assert np.array_equal(pieces[:120], full[:120]), size
        assert np.array_equal(np.vstack([clf.transform(X[i:i + size]) for i in range(0, 120, size)])[:120],
                              embedded[:120]), size
    monkeypatch.setattr(inference, "invariant_copy", widened_copy)  # float64 throughout
    inference._INFERENCE_COPIES.clear()
    np.testing.assert_allclose(full, clf.predict_proba(X), rtol=1e-5, atol=1e-6)
    inference._INFERENCE_COPIES.clear()
