"""The estimator's own defaults: each "auto" rule on planted data, and a failed refit that keeps the old model."""

import numpy as np
import pytest
import torch
from support import relation_pairs

from skobject2vec import Object2VecClassifier, Object2VecRegressor
from skobject2vec._auto import (
    AUTO_DROPOUT,
    AUTO_ENC_DIM,
    AUTO_MAX_POOLING_MIN_VOCAB,
    AUTO_OPTIMIZATION,
    AUTO_TUPLE_MAX_LEN,
    AUTO_WORD_ENC_DIM,
    DataShape,
    auto_batch_size,
    resolve_auto,
)
from skobject2vec.data.jsonlines import write_records
from skobject2vec.datasets import make_score_pairs, make_topic_pairs
from skobject2vec.hyperparameters import BY_NAME, HYPERPARAMETERS, sagemaker_defaults


def _auto_params(**overrides):
    return {**{hp.name: hp.default for hp in HYPERPARAMETERS}, "num_classes": None, **overrides}


def test_resolve_auto_rules_by_data_shape():
    sentences = resolve_auto(_auto_params(), DataShape(5000, (30, 25)))
    assert sentences["shared_encoder"] and sentences["tied_token_embedding_weight"]
    assert (sentences["optimizer"], sentences["learning_rate"], sentences["weight_decay"]) == ("adam", 0.001, 0.0)
    assert sentences["mlp_layers"] == 1 and sentences["validation_fraction"] == 0.1
    assert sentences["dropout"] == AUTO_DROPOUT["other"] == 0.3
    ratings = resolve_auto(_auto_params(), DataShape(90000, (1, 1)))
    assert not ratings["shared_encoder"] and not ratings["tied_token_embedding_weight"]
    assert {k: ratings[k] for k in AUTO_OPTIMIZATION["single_ids"]} == AUTO_OPTIMIZATION["single_ids"]
    # the ratings recipe (Adagrad) reads 4 times the rule's batch; the Adam recipes keep the rule's
    assert ratings["mlp_layers"] == 0 and ratings["mini_batch_size"] == 1024
    adam_ratings = resolve_auto(_auto_params(optimizer="adam"), DataShape(90000, (1, 1)))
    assert adam_ratings["mini_batch_size"] == 256
    # a user id against [item, its genres...]: bags of ids of any length
    features = resolve_auto(_auto_params(), DataShape(500, (1, 6), min_lens=(1, 2)))
    assert not features["shared_encoder"] and features["optimizer"] == "adagrad" and features["mlp_layers"] == 1
    assert features["weight_decay"] == AUTO_OPTIMIZATION["ids"]["weight_decay"] < ratings["weight_decay"]
    assert features["validation_fraction"] is None and features["mini_batch_size"] == 32  # small: no hold-out
    assert features["enc0_network"] == "pooled_embedding" and features["enc1_network"] == "enc0"
    streamed = resolve_auto(_auto_params(), DataShape(10 ** 6, (5, 5), streamed=True))
    assert streamed["validation_fraction"] is None  # streams early-stop on X_val only
    explicit = resolve_auto(_auto_params(optimizer="sgd", learning_rate=0.1, mlp_layers=3, shared_encoder=False,
                                         validation_fraction=0.2), DataShape(5000, (30, 25)))
    assert (explicit["optimizer"], explicit["learning_rate"], explicit["mlp_layers"]) == ("sgd", 0.1, 3)
    assert not explicit["shared_encoder"] and explicit["validation_fraction"] == 0.2
    assert [auto_batch_size(n) for n in (10, 16000, 40000, 10 ** 7)] == [32, 32, 128, 256]
    assert [auto_batch_size(n, large=True) for n in (10, 16000, 40000, 10 ** 7)] == [128, 128, 512, 1024]


def test_compared_adam_recipes_on_large_ratings_read_the_large_batch_at_twice_the_rate():
    from skobject2vec._auto import AUTO_ADAM_LARGE_BATCH_MIN_RECORDS, AUTO_RECIPES, auto_recipes

    # From 65,536 (user, item) records the Adam recipes set the comparison's bar in a quarter of the steps
    large = auto_recipes(_auto_params(), DataShape(AUTO_ADAM_LARGE_BATCH_MIN_RECORDS, (1, 1)))
    for name in ("adam", "adam-fast", "adam-sparse"):
        assert large[name]["mini_batch_size"] == 1024
        assert large[name]["learning_rate"] == 2 * AUTO_RECIPES["single_ids"][name]["learning_rate"]
    assert large["adagrad"] == {}  # its batch is the rule's large one (resolve_auto), its rate its own
    assert AUTO_RECIPES["single_ids"]["adam"]["learning_rate"] == 0.003  # the table itself is not changed
    # below it, with a batch the user gives, or with an optimisation setting given (one plan), no change
    small = auto_recipes(_auto_params(), DataShape(AUTO_ADAM_LARGE_BATCH_MIN_RECORDS - 1, (1, 1)))
    given = auto_recipes(_auto_params(mini_batch_size=512), DataShape(90000, (1, 1)))
    adam_given = auto_recipes(_auto_params(optimizer="adam"), DataShape(90000, (1, 1), vocab_size=2000))
    assert list(adam_given) == ["adam", "adam-sparse"]  # its dense and lazy recipes, compared
    for recipes in (given, adam_given):
        assert all("mini_batch_size" not in overrides for overrides in recipes.values())
    # lazy Adam (LARGE_BATCH_RECIPES) reads the large batch at any size: it trains only where Adagrad starved,
    # and at the rule's small batch its sparse steps made the planted fits 40 % slower, to lose anyway
    assert [name for name, overrides in small.items() if "mini_batch_size" in overrides] == ["adam-sparse"]
    assert small["adam-sparse"]["mini_batch_size"] == auto_batch_size(AUTO_ADAM_LARGE_BATCH_MIN_RECORDS - 1, large=True)
    rates = {small["adam"]["learning_rate"], given["adam"]["learning_rate"], adam_given["adam"]["learning_rate"]}
    assert rates == {0.003}


def test_tuple_of_fields_gets_a_convolution_over_the_whole_tuple():
    links = resolve_auto(_auto_params(enc0_vocab_size=50), DataShape(500, (2, 1), min_lens=(2, 1)))
    assert (links["enc0_network"], links["enc0_layers"], links["enc0_cnn_filter_width"]) == ("hcnn", 1, 2)
    assert links["enc1_network"] == "pooled_embedding" and links["enc1_vocab_size"] == 50  # enc0's, but the network
    assert {k: links[k] for k in AUTO_OPTIMIZATION["tuples"]} == AUTO_OPTIMIZATION["tuples"]
    assert not links["shared_encoder"] and not links["tied_token_embedding_weight"]
    assert links["dropout"] == AUTO_DROPOUT["tuples"] > AUTO_DROPOUT["other"]
    # the tuple on in1 ([user] vs [item, category, year]): enc1 reads it
    flipped = resolve_auto(_auto_params(), DataShape(500, (1, 3), min_lens=(1, 3)))
    assert flipped["enc0_network"] == "pooled_embedding"
    assert (flipped["enc1_network"], flipped["enc1_layers"], flipped["enc1_cnn_filter_width"]) == ("hcnn", 1, 3)
    # a regressor on [user] vs [item, year] (ratings with side features) keeps the id-pair rules
    ratings = resolve_auto(_auto_params(), DataShape(500, (1, 2), min_lens=(1, 2), task="regression"))
    assert ratings["enc0_network"] == "pooled_embedding" and ratings["enc1_network"] == "enc0"
    assert ratings["optimizer"] == "adagrad"
    # integer columns on both sides (a 2-D array): one shared hcnn that sees a whole tuple, for either task
    columns = resolve_auto(_auto_params(), DataShape(500, (3, 5), min_lens=(3, 5), task="regression"))
    assert columns["shared_encoder"] and columns["enc1_network"] == "enc0"
    assert (columns["enc0_network"], columns["enc0_layers"], columns["enc0_cnn_filter_width"]) == ("hcnn", 1, 5)
    # not tuples: lengths that vary, longer than AUTO_TUPLE_MAX_LEN, against a sentence, or unknown
    for shape in (DataShape(500, (3, 1), min_lens=(2, 1)), DataShape(500, (AUTO_TUPLE_MAX_LEN + 1, 1),
                  min_lens=(AUTO_TUPLE_MAX_LEN + 1, 1)), DataShape(500, (2, 9), min_lens=(2, 1)),
                  DataShape(500, (2, 1))):
        assert resolve_auto(_auto_params(), shape)["enc0_network"] == "pooled_embedding", shape
    # an explicit encoder is kept (filter width 3 as before); one shared encoder is not split
    assert resolve_auto(_auto_params(enc0_network="hcnn"), DataShape(500, (2, 1), min_lens=(2, 1)))[
        "enc0_cnn_filter_width"] == 3
    shared = resolve_auto(_auto_params(shared_encoder=True), DataShape(500, (2, 1), min_lens=(2, 1)))
    assert (shared["enc0_network"], shared["enc1_network"]) == ("hcnn", "enc0")
    # one tied table for the hcnn and the pooled side: as wide as the pooled side's vectors (enc_dim)
    tied = resolve_auto(_auto_params(tied_token_embedding_weight=True, enc_dim=64), DataShape(500, (2, 1),
                                                                                             min_lens=(2, 1)))
    assert (tied["enc0_network"], tied["enc1_network"]) == ("hcnn", "pooled_embedding")
    assert tied["enc0_token_embedding_dim"] == tied["enc1_token_embedding_dim"] == 64
    # a token width the user set is not overridden
    own = resolve_auto(_auto_params(tied_token_embedding_weight=True, enc0_token_embedding_dim=32),
                       DataShape(500, (2, 1), min_lens=(2, 1)))
    assert own["enc0_token_embedding_dim"] == 32


def test_a_tied_table_fits_with_the_tuple_encoder():
    """tied_token_embedding_weight=True on [head, relation] vs [tail] used to fail: the auto hcnn's
    300-dim tokens against the pooled side's enc_dim."""
    X, y = relation_pairs(seed=0)
    clf = Object2VecClassifier(tied_token_embedding_weight=True, enc_dim=32, epochs=2, random_state=0).fit(X, y)
    assert clf.net_.config["networks"] == ["hcnn", "pooled_embedding"]
    assert clf.net_.config["token_dims"] == [32, 32]
    assert clf.net_.token_table(0) is clf.net_.token_table(1)
    with pytest.raises(ValueError, match="token embedding dims differ: enc0 16 vs enc1 32"):
        Object2VecClassifier(tied_token_embedding_weight=True, enc_dim=32, enc0_token_embedding_dim=16,
                             epochs=1).fit(X, y)


def test_defaults_learn_a_planted_relation_through_the_tuple_encoder(tmp_path):
    X, y = relation_pairs(seed=0)
    X_test, y_test = relation_pairs(seed=1)
    clf = Object2VecClassifier(random_state=0).fit(X, y)
    assert clf.net_.config["networks"] == ["hcnn", "pooled_embedding"]
    assert clf.net_.config["filter_widths"][0] == 2 and clf.net_.config["layers"][0] == 1
    assert clf.net_.config["dropout"] == AUTO_DROPOUT["tuples"]
    majority = max(y_test.mean(), 1 - y_test.mean())
    assert clf.score(X_test, y_test) >= 0.95 > majority + 0.15
    # a streamed fit's pre-pass sees the same shape (the shortest records too)
    path = tmp_path / "train.jsonl"
    write_records(X, path, labels=y.tolist())
    streamed = Object2VecClassifier(random_state=0, epochs=1).fit(path)
    assert streamed.net_.config["networks"] == ["hcnn", "pooled_embedding"]


def test_enc_dim_auto_rule_widens_pooled_word_pairs_only():
    words = DataShape(5000, (30, 25), vocab_size=11472)
    assert resolve_auto(_auto_params(), words)["enc_dim"] == AUTO_WORD_ENC_DIM == 384
    for other in (DataShape(5000, (64, 64), vocab_size=256),  # pixel tokens
                  DataShape(5000, (30, 25)),  # vocabulary unknown
                  DataShape(90000, (1, 1), vocab_size=10 ** 4),  # ratings
                  DataShape(500, (2, 1), vocab_size=AUTO_MAX_POOLING_MIN_VOCAB)):  # [head, relation] vs tail
        assert resolve_auto(_auto_params(), other)["enc_dim"] == AUTO_ENC_DIM == 128
    # an explicit value, or an encoder that does not pool, keeps it
    assert resolve_auto(_auto_params(enc_dim=64), words)["enc_dim"] == 64
    assert resolve_auto(_auto_params(enc0_network="bilstm"), words)["enc_dim"] == AUTO_ENC_DIM
    assert BY_NAME["enc_dim"].sagemaker_default == 4096  # a migrated job keeps SageMaker's
    # end to end: a pooled side's token rows are as wide as its vectors
    X, y = make_topic_pairs(200, seed=0)
    X = [{"in0": [t * 10 for t in r["in0"]], "in1": [t * 10 + 9 for t in r["in1"]]} for r in X]  # 1,000+ ids
    model = Object2VecClassifier(random_state=0, epochs=1).fit(X, y)
    assert model.get_params()["enc_dim"] == "auto"
    assert model.net_.config["enc_dim"] == 384 and model.net_.token_table(0).weight.shape[1] == 384
    assert model.transform(X[:2]).shape == (2, 2 * 384)


def test_pooling_auto_rule_max_pools_words_only():
    words = AUTO_MAX_POOLING_MIN_VOCAB
    assert resolve_auto(_auto_params(), DataShape(5000, (30, 25), vocab_size=11472))["pooling"] == "max"
    assert resolve_auto(_auto_params(), DataShape(5000, (64, 64), vocab_size=256))["pooling"] == "mean"  # pixels
    assert resolve_auto(_auto_params(), DataShape(5000, (30, 25)))["pooling"] == "mean"  # vocabulary unknown
    assert resolve_auto(_auto_params(), DataShape(90000, (1, 1), vocab_size=10 ** 4))["pooling"] == "mean"
    assert resolve_auto(_auto_params(), DataShape(500, (2, 1), vocab_size=words))["pooling"] == "mean"
    explicit = resolve_auto(_auto_params(pooling="mean"), DataShape(5000, (30, 25), vocab_size=words))
    assert explicit["pooling"] == "mean"
    assert BY_NAME["pooling"].sagemaker_default == "mean"  # SageMaker's pooled_embedding is a mean


def test_learning_rate_decay_auto_rule_and_default_callback():
    assert resolve_auto(_auto_params(), DataShape(90000, (1, 1)))["learning_rate_decay"] == 0.85  # ratings
    for shape in (DataShape(5000, (30, 25)), DataShape(500, (2, 1))):  # sentences, [head, relation] -> tail
        assert resolve_auto(_auto_params(), shape)["learning_rate_decay"] == 1.0
    assert resolve_auto(_auto_params(learning_rate_decay=0.5), DataShape(90000, (1, 1)))["learning_rate_decay"] == 0.5
    assert BY_NAME["learning_rate_decay"].sagemaker_default == 1.0  # SageMaker keeps the learning rate
    rng = np.random.default_rng(0)
    pairs, y = rng.integers(0, 30, (1200, 2)), rng.normal(size=1200)
    decayed = Object2VecRegressor(epochs=3, early_stopping_patience=5, random_state=0).fit(pairs, y)
    assert [round(r["learning_rate"], 6) for r in decayed.history_] == [0.05, 0.0425, 0.036125]
    off = Object2VecRegressor(epochs=2, random_state=0, callbacks=[("lr_scheduler", None)]).fit(pairs, y)
    assert "learning_rate" not in off.history_[0]  # (name, None) turns the default off
    constant = Object2VecRegressor(epochs=2, learning_rate_decay=1.0, random_state=0).fit(pairs, y)
    assert "learning_rate" not in constant.history_[0]


def test_max_pooling_ignores_padding_and_adds_no_weights():
    import torch

    from skobject2vec.nn import Object2VecNet
    from skobject2vec.nn.encoders import PooledEmbeddingEncoder

    x = torch.tensor([[[1.0, -2.0], [3.0, -5.0], [9.0, 9.0]]])
    mask = torch.tensor([[True, True, False]])  # the third token is padding
    out = PooledEmbeddingEncoder(2, 2, "max")(x, mask, torch.tensor([2]))
    assert out.tolist() == [[3.0, -2.0]]
    assert PooledEmbeddingEncoder(2, 2)(x, mask, torch.tensor([2])).tolist() == [[2.0, -3.5]]  # mean
    # head_mean: the first token (an id) plus the mean of the others (its context); one token: the id alone
    x3 = torch.tensor([[[1.0, -2.0], [3.0, -5.0], [5.0, 1.0], [9.0, 9.0]], [[2.0, 2.0], [7.0, 7.0], [0, 0], [0, 0]]])
    mask3 = torch.tensor([[True, True, True, False], [True, False, False, False]])
    out = PooledEmbeddingEncoder(2, 2, "head_mean")(x3, mask3, torch.tensor([3, 1]))
    assert out.tolist() == [[1.0 + 4.0, -2.0 - 2.0], [2.0, 2.0]]
    config = dict(vocab_sizes=[10, 10], token_dims=[4, 4], networks=["pooled_embedding"] * 2, layers=[1, 1],
                  filter_widths=[3, 3], enc_dim=4, comparator=["hadamard"], mlp_layers=0, mlp_dim=4,
                  mlp_activation="relu", dropout=0.0, n_outputs=1, tied=True, shared=True, sparse=False)
    old, new = Object2VecNet(config), Object2VecNet({**config, "pooling": "max"})
    assert old.encoder0.pooling == "mean" and new.encoder0.pooling == "max"  # no key: mean (old artifacts)
    assert old.state_dict().keys() == new.state_dict().keys()


@pytest.mark.parametrize("pooling", ["mean", "max", "head_mean"])
def test_a_training_step_pools_without_padding_as_the_padded_encoder_does(pooling):
    import torch

    from skobject2vec.nn import Object2VecNet

    # Training pools the valid tokens of each record alone (no padded batch x longest x width tensor: a
    # MovieLens epoch with users' full histories was 5x slower padded); the padded encoder, which the
    # float64 inference copy runs, is the reference: the same outputs and the same gradients.
    config = dict(vocab_sizes=[30, 30], token_dims=[4, 4], networks=["pooled_embedding"] * 2, layers=[1, 1],
                  filter_widths=[3, 3], enc_dim=4, comparator=["hadamard", "concat"], mlp_layers=0, mlp_dim=4,
                  mlp_activation="relu", dropout=0.0, n_outputs=1, tied=False, shared=False, sparse=False,
                  pooling=pooling)
    torch.manual_seed(0)
    net = Object2VecNet(config)
    # mostly padding (8 of 18 slots valid): where head_mean pools the valid tokens alone
    ids = torch.tensor([[3, 11, 12, 13, 14, 15], [4, 0, 0, 0, 0, 0], [5, 0, 0, 0, 0, 0]])
    lengths = torch.tensor([6, 1, 1])
    ids1, lengths1 = torch.tensor([[7], [8], [9]]), torch.tensor([1, 1, 1])

    def run(flat):
        net.zero_grad()
        if flat:
            out = net(ids, lengths, ids1, lengths1)
        else:  # with_row_penalty takes the padded path for both sides
            out = net(ids, lengths, ids1, lengths1, with_row_penalty=True)[0]
        out.sum().backward()
        return out.detach(), net.token_embedding0.weight.grad.clone()

    reduced = []
    segment_reduce, embedding_bag = torch.segment_reduce, torch.nn.functional.embedding_bag

    def counted(function):
        def call(*args, **kwargs):
            reduced.append(function.__name__)
            return function(*args, **kwargs)
        return call

    from skobject2vec.nn import model

    with pytest.MonkeyPatch.context() as patch:  # the flat path is the one compared
        patch.setattr(torch, "segment_reduce", counted(segment_reduce))
        patch.setattr(torch.nn.functional, "embedding_bag", counted(embedding_bag))
        patch.setattr(model, "segment_max", counted(model.segment_max))
        flat_out, flat_grad = run(True)
    padded_out, padded_grad = run(False)
    assert reduced
    torch.testing.assert_close(flat_out, padded_out)
    torch.testing.assert_close(flat_grad, padded_grad)



@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_segment_max_gives_segment_reduces_maxima_and_gradients_to_the_bit(dtype):
    import torch

    from skobject2vec.nn.segments import segment_max

    # The pooled encoders' max over each record's rows: scatter_reduce's maxima and segment_reduce's own
    # backward kernel, so the same floats as segment_reduce, also for its quirks: a tie (a token twice in a
    # sentence) splits a positive gradient between the tied rows but gives a negative one to each in full;
    # a NaN wins; a record without rows gets -inf and no gradient.
    g = torch.Generator().manual_seed(0)
    kind = getattr(torch, dtype)
    lengths = torch.tensor([3, 1, 0, 5, 2])
    rows = torch.randn(int(lengths.sum()), 6, generator=g, dtype=kind)
    rows[1] = rows[0]  # a tie in record 0, every dimension
    rows[5] = rows[7] = rows[6]  # three tied rows in record 3
    rows[9, 2] = float("nan")
    rows[4, 1] = float("-inf")
    grad = torch.randn(len(lengths), 6, generator=g, dtype=kind)  # positive and negative
    results = []
    for pool in (lambda r: torch.segment_reduce(r, "max", lengths=lengths), lambda r: segment_max(r, lengths)):
        leaf = rows.clone().requires_grad_(True)
        out = pool(leaf)
        out.backward(grad)
        results.append((out.detach(), leaf.grad))
    (expected, expected_grad), (got, got_grad) = results
    assert torch.equal(got.nan_to_num(7.0), expected.nan_to_num(7.0)) and torch.isnan(got[4, 2])
    assert torch.equal(got_grad, expected_grad)
    assert (got_grad[0] != 0).any() and (got_grad[0] == got_grad[1]).all()  # the tie shares the gradient
    with torch.no_grad():  # inference: the maxima alone
        assert torch.equal(segment_max(rows, lengths).nan_to_num(7.0), expected.nan_to_num(7.0))



@pytest.mark.parametrize("width, padding, length", [(2, 0, 3), (3, 1, 2), (3, 1, 8), (2, 0, 30)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_hcnn_convolution_over_short_inputs_is_the_convolution(width, padding, length, dtype):
    import torch

    from skobject2vec.nn.encoders import UNFOLDED_MAX_LEN, _convolve

    # Over tuples of fields the convolution runs as one matrix product of the unfolded windows (oneDNN is
    # 3x slower there, 8x in float64); the same function to rounding, outputs and gradients, padding included.
    kind = getattr(torch, dtype)
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(6, 5, width, padding=padding).to(kind)
    x = torch.randn(4, 6, length, dtype=kind, requires_grad=True)
    expected = conv(x)
    (weight_grad,) = torch.autograd.grad(expected.pow(2).sum(), [conv.weight])
    got = _convolve(conv, x)
    (got_weight_grad,) = torch.autograd.grad(got.pow(2).sum(), [conv.weight])
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got_weight_grad, weight_grad)
    assert (length + 2 * padding <= UNFOLDED_MAX_LEN) == (got.grad_fn.name() != expected.grad_fn.name())


@pytest.mark.parametrize("network, pooling", [("pooled_embedding", "max"), ("pooled_embedding", "mean"),
                                              ("pooled_embedding", "head_mean"), ("hcnn", "max"), ("bilstm", "max")])
@pytest.mark.parametrize("widened", [False, True])
def test_every_encoder_embeds_records_given_one_after_another_as_it_embeds_them_padded(network, pooling, widened):
    import torch

    from skobject2vec.data.batching import Ragged
    from skobject2vec.nn import Object2VecNet
    from skobject2vec.nn.model import widened_copy

    # predict and transform hand a pooling encoder each record's tokens one after another (no padded
    # matrix to take apart again); every encoder takes them, and must embed them to the same bits
    config = dict(vocab_sizes=[30, 30], token_dims=[8, 8], networks=[network] * 2, layers=[1, 1],
                  filter_widths=[3, 3], enc_dim=8, comparator=["hadamard", "concat"], mlp_layers=1, mlp_dim=8,
                  mlp_activation="relu", dropout=0.0, n_outputs=2, tied=False, shared=False, sparse=False,
                  pooling=pooling)
    torch.manual_seed(0)
    net = Object2VecNet(config).eval()
    net = widened_copy(net) if widened else net
    rng = np.random.default_rng(0)
    ragged = Ragged.from_lists([rng.integers(0, 40, n).tolist() for n in (1, 5, 2, 9, 1, 3)])  # 30+: unknown
    index = np.arange(6)
    with torch.inference_mode():
        for side in (0, 1):
            padded = net.encode(side, *ragged.pad(index, 7, 30))
            flat = net.encode(side, *ragged.tokens(index, 7, 30))
            assert torch.equal(flat, padded), (side, net.flat_sides())
        scores = net(*ragged.pad(index, 7, 30), *ragged.pad(index[::-1], 7, 30))
        assert torch.equal(net(*ragged.tokens(index, 7, 30), *ragged.tokens(index[::-1], 7, 30)), scores)
    reads_flat = network == "pooled_embedding" and pooling in ("max", "mean")
    assert net.flat_sides() == (reads_flat, reads_flat)


def test_sagemaker_defaults_have_no_auto_left():
    """A migrated job trains with SageMaker's values: nothing data-dependent is left to decide."""
    filled = sagemaker_defaults()
    assert "auto" not in {v for k, v in filled.items() if k not in ("enc0_layers", "enc1_layers")}
    assert filled["optimizer"] == "adam" and filled["mlp_layers"] == 2 and filled["enc0_network"] == "hcnn"
    assert BY_NAME["optimizer"].default == "auto"


@pytest.mark.parametrize("estimator, n, held_out", [
    (Object2VecRegressor, 499, False), (Object2VecRegressor, 500, True), (Object2VecClassifier, 999, False),
    (Object2VecClassifier, 1000, True)])
def test_early_stopping_holds_out_from_500_records_for_a_regressor_and_1000_for_a_classifier(estimator, n, held_out):
    # without a hold-out every epoch trains, and a regressor's squared error memorises its targets' noise
    # (planted ratings cut to 800 records: test R^2 below 0); a classifier's accuracy does not suffer so
    rng = np.random.default_rng(0)
    X = np.c_[rng.integers(0, 50, n), rng.integers(0, 60, n)]
    y = rng.normal(size=n) if estimator is Object2VecRegressor else rng.integers(0, 2, n)
    model = estimator(random_state=0, epochs=1).fit(X, y)
    key = "validation:mean_squared_error" if estimator is Object2VecRegressor else "validation:cross_entropy"
    assert (key in model.history_[0]) is held_out


@pytest.mark.slow
@pytest.mark.parametrize("network", ["pooled_embedding", "hcnn", "bilstm"])
def test_every_encoder_learns_a_planted_rule_with_defaults(network):
    X, y = make_topic_pairs(1400, seed=5)
    clf = Object2VecClassifier(enc0_network=network, random_state=0).fit(X[:1200], y[:1200])
    assert clf.net_.shared  # sentence-like pairs: one encoder
    assert "validation:cross_entropy" in clf.history_[0]  # early stopping on by default (>= 1,000 records)
    assert clf.score(X[1200:], y[1200:]) >= 0.9


def test_single_id_pairs_get_matrix_factorisation_with_defaults():
    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(60, 3)), rng.normal(size=(80, 3))
    pairs = np.stack([rng.integers(0, 60, 3000), rng.integers(0, 80, 3000)], axis=1)
    ratings = (users[pairs[:, 0]] * items[pairs[:, 1]]).sum(1) + rng.normal(0, 0.1, len(pairs))
    reg = Object2VecRegressor(random_state=0).fit(pairs[:2500], ratings[:2500])
    assert reg.net_.config["mlp_layers"] == 0 and not reg.net_.shared
    assert reg.score(pairs[2500:], ratings[2500:]) > 0.8


def test_small_data_has_no_hold_out_by_default():
    X, y = make_score_pairs(300, seed=1)
    reg = Object2VecRegressor(enc_dim=16, epochs=3, random_state=0).fit(X, y)
    assert len(reg.history_) == 3 and not any(k.startswith("validation:") for k in reg.history_[0])


def test_failed_refit_keeps_the_previous_model():
    X, y = make_topic_pairs(200, seed=2)
    clf = Object2VecClassifier(enc_dim=8, epochs=2, random_state=0).fit(X, y)
    before = clf.predict_proba(X[:20])
    net, classes = clf.net_, clf.classes_
    with pytest.raises(ValueError, match="not less than vocab_size"):
        clf.set_params(enc0_vocab_size=3).fit(X, np.where(y == 1, "b", "a"))
    assert clf.net_ is net and clf.classes_.tolist() == classes.tolist() == [0, 1]
    np.testing.assert_array_equal(clf.predict_proba(X[:20]), before)


def _planted_ratings(seed=0, users=150, items=200, n=6000, rank=3):
    rng = np.random.default_rng(seed)
    U, V = rng.normal(size=(users, rank)), rng.normal(size=(items, rank))
    u, i = rng.integers(0, users, n), rng.integers(0, items, n)
    y = (U[u] * V[i]).sum(1) + rng.normal(size=users)[u] + rng.normal(size=items)[i]
    X = np.column_stack([u, users + i])
    cut = int(0.8 * n)
    return X[:cut], y[:cut], X[cut:], y[cut:]


def test_an_explicit_learning_rate_gets_the_optimizer_and_schedule_it_suits():
    p = _auto_params(learning_rate=0.003)
    resolved = resolve_auto(p, DataShape(90000, (1, 1)))
    assert (resolved["optimizer"], resolved["weight_decay"], resolved["learning_rate_decay"]) == ("adam", 0.0, 1.0)
    resolved = resolve_auto(_auto_params(learning_rate=0.1), DataShape(90000, (1, 1)))
    assert (resolved["optimizer"], resolved["learning_rate_decay"]) == ("adagrad", 1.0)  # Adagrad-sized: kept
    resolved = resolve_auto(_auto_params(optimizer="adam"), DataShape(90000, (1, 1)))
    assert (resolved["learning_rate"], resolved["weight_decay"]) == (0.001, 0.0)  # Adam's own rate, not Adagrad's


def test_a_grid_over_learning_rate_alone_finds_a_good_model_of_planted_ratings():
    # the clean low-rank ratings of issue 26: an Adam-sized rate used to meet Adagrad's decaying schedule (R^2 0.2)
    X, y, X_test, y_test = _planted_ratings()
    scores = {lr: Object2VecRegressor(learning_rate=lr, random_state=0, epochs=30).fit(X, y).score(X_test, y_test)
              for lr in (0.003, 0.01)}
    # (Adagrad with the ratings schedule: R^2 about 0.2 at 0.003; SVD reaches 0.99 on such data with more epochs)
    assert max(scores.values()) >= 0.88 and min(scores.values()) >= 0.8, scores


def test_a_learning_rate_alone_trains_the_recipe_of_the_optimizer_it_picks():
    from skobject2vec._auto import AUTO_RECIPES

    # learning_rate=0.003 on (user, item) ratings picks Adam; it trains the Adam recipe the comparison would
    # (weight decay, no dropout, hadamard + concat) at that rate, not a bare Adam (R^2 0.46 against the
    # recipe's 0.78 on planted history ratings, benchmarks/bench_defaults.py)
    # Its dense and its lazy (sparse rows) form are compared: neither holds at every rate on every family.
    X, y, X_test, y_test = _planted_ratings()
    given = Object2VecRegressor(learning_rate=0.003, random_state=0, epochs=3).fit(X, y)
    record = given.auto_recipe_
    assert list(record["validation_loss"]) == ["adam", "adam-sparse"]
    assert record["settings"]["learning_rate"] == 0.003 and record["settings"]["learning_rate_decay"] == 1.0
    for name in ("adam", "adam-sparse"):  # each trained as its recipe spelled out at that rate, constant
        recipe = dict(AUTO_RECIPES["single_ids"][name], learning_rate=0.003, learning_rate_decay=1.0,
                      token_embedding_storage_type="row_sparse" if name == "adam-sparse" else "dense")
        spelled_out = Object2VecRegressor(**recipe, random_state=0, epochs=3).fit(X, y)
        assert not hasattr(spelled_out, "auto_recipe_")  # every setting given: one plan
        best = min(epoch["validation:mean_squared_error"] for epoch in spelled_out.history_)
        assert best == pytest.approx(record["validation_loss"][name], rel=1e-6)
        if name == record["chosen"]:
            np.testing.assert_array_equal(given.predict(X_test), spelled_out.predict(X_test))
    assert given.net_.config["comparator"] == ["hadamard", "concat"]
    # Over 6,000 x 6,000 ids "auto" storage gives both tables sparse rows already: the lazy recipe would train the
    # same network the same way, so it trains once (no dense step over large tables: issue 24's cost)
    rng = np.random.default_rng(0)
    wide = np.column_stack([rng.integers(0, 6000, 3000), 6000 + rng.integers(0, 6000, 3000)])
    once = Object2VecRegressor(learning_rate=0.01, random_state=0, epochs=2).fit(wide, rng.normal(size=3000))
    assert list(once.auto_recipe_["validation_loss"]) == ["adam"]
    assert once.net_.token_embedding0.sparse and once.net_.token_embedding1.sparse
    # optimizer="adam" alone: the same recipe at its own rate
    adam = Object2VecRegressor(optimizer="adam", random_state=0, epochs=1).fit(X, y)
    assert adam.net_.config["comparator"] == ["hadamard", "concat"] and adam.net_.config["dropout"] == 0
    # a rate Adagrad-sized keeps the family's Adagrad recipe (SageMaker's comparator list), at a constant rate
    large = Object2VecRegressor(learning_rate=0.1, random_state=0, epochs=1).fit(X, y)
    assert large.net_.config["comparator"] == ["hadamard", "concat", "abs_diff"]


def test_the_fast_adam_recipe_keeps_its_rate_where_ratings_learn_slowly():
    # Planted ratings whose item factors are the mean of two genres' (bench_defaults.py's mf-side-ids, smaller
    # and noise-free), as ids alone: every item is rated 12 times, so the factors are learnt slowly and the
    # fast Adam recipe is kept, still improving at the 15th and last epoch. At a constant 0.01 it reaches R^2
    # 0.84; with its rate times 0.85 per epoch (until session 33: 15 epochs then hold 6 epochs' worth of rate)
    # 0.76, and 0.79 at 30 epochs against 0.92 (mf-side-ids: 0.49 against 0.66).
    rng = np.random.default_rng(0)
    n_users, n_items, n_genres, rank, n = 500, 1000, 20, 4, 15000
    G, bg = rng.normal(size=(n_genres, rank)), rng.normal(size=n_genres)
    genres = np.stack([rng.choice(n_genres, 2, replace=False) for _ in range(n_items)])
    V, bi = G[genres].mean(1) * np.sqrt(2), bg[genres].mean(1)
    U = rng.normal(size=(n_users, rank))
    cells = rng.choice(n_users * n_items, n, replace=False)
    u, i = cells // n_items, cells % n_items
    X, y = np.column_stack([u, n_users + i]), (U[u] * V[i]).sum(1) + bi[i]
    model = Object2VecRegressor(random_state=0, epochs=15).fit(X[:12000], y[:12000])
    recipe = model.auto_recipe_
    assert recipe["chosen"] == "adam-fast" and recipe["epochs"]["adam-fast"] == 15
    assert recipe["settings"]["learning_rate_decay"] == 1.0
    assert model.score(X[12000:], y[12000:]) > 0.8


def test_a_ratings_recipe_still_improving_at_its_last_epoch_is_followed_by_lazy_adam():
    # Adagrad's rate shrinks by 0.85 per epoch (tuned where it converges in 14-18 epochs); where it is still
    # improving at its last epoch (the last it was given, or where the best recipe before it stopped it), its
    # schedule may have starved it, and Adam on sparse rows at a constant rate trains too (RECIPE_AFTER_STARVED),
    # at the large batch; where it converged, or went past its best, it does not.
    from skobject2vec._auto import AUTO_LARGE_BATCH_FACTOR, AUTO_RECIPES, auto_batch_size

    rng = np.random.default_rng(0)
    n_users, n_items, n = 60, 80, 3000
    U, V = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    u, i = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    X, y = np.column_stack([u, n_users + i]), (U[u] * V[i]).sum(1) + rng.normal(0, 0.1, n)
    starved = Object2VecRegressor(random_state=0, epochs=2).fit(X, y)
    record = starved.auto_recipe_
    assert record["epochs"]["adagrad"] == 2 and "adam-sparse" in record["epochs"]
    assert record["chosen"] == min(record["validation_loss"], key=record["validation_loss"].get)
    if record["chosen"] == "adam-sparse":
        rate = AUTO_RECIPES["single_ids"]["adam-sparse"]["learning_rate"] * AUTO_LARGE_BATCH_FACTOR ** 0.5
        assert record["settings"]["optimizer"] == "adam" and record["settings"]["learning_rate"] == rate
        assert record["settings"]["token_embedding_storage_type"] == "row_sparse"
        assert starved.net_.token_embedding0.sparse
    # ratings that biases explain (plus noise): Adagrad is past its best before its 15 epochs, no follower
    biases = u / n_users + i / n_items + rng.normal(0, 0.5, n)
    converged = Object2VecRegressor(random_state=0, epochs=15).fit(X, biases).auto_recipe_
    assert converged["epochs"]["adagrad"] < 15 and "adam-sparse" not in converged["epochs"]
    # the lazy recipe is defined by its storage: an explicit "dense" leaves it out, "row_sparse" keeps it
    dense = Object2VecRegressor(random_state=0, epochs=2, token_embedding_storage_type="dense").fit(X, y)
    assert "adam-sparse" not in dense.auto_recipe_["epochs"] and not dense.net_.token_embedding0.sparse
    sparse = Object2VecRegressor(random_state=0, epochs=2, token_embedding_storage_type="row_sparse").fit(X, y)
    assert "adam-sparse" in sparse.auto_recipe_["epochs"]
    assert auto_batch_size(len(X), large=True) == AUTO_LARGE_BATCH_FACTOR * auto_batch_size(len(X))


def test_sparse_low_rank_ratings_reach_the_planted_model_with_the_defaults():
    # Clean rank-4 ratings over 600 x 600 ids, 40 ratings per id: dense Adam's weight decay, a gradient on every
    # row at each step that Adam scales to a full-rate step, holds the factors at zero (validation loss at the
    # biases' level), and Adagrad's decaying rate starves; lazy Adam, whose moments and decay move only with the
    # rows a step reads, finds the factors (the defaults before it: R^2 0.948; Surprise's SVD needs 4 factors
    # and 100 epochs for this)
    rng = np.random.default_rng(0)
    n_users, n_items, n, rank = 600, 600, 30_000, 4
    U, V = rng.normal(size=(n_users, rank)), rng.normal(size=(n_items, rank))
    bu, bi = rng.normal(size=n_users), rng.normal(size=n_items)
    cells = rng.choice(n_users * n_items, n, replace=False)
    u, i = cells // n_items, cells % n_items
    X, y = np.column_stack([u, n_users + i]), (U[u] * V[i]).sum(1) + bu[u] + bi[i]
    model = Object2VecRegressor(random_state=0).fit(X[:24_000], y[:24_000])
    assert model.auto_recipe_["chosen"] == "adam-sparse"
    assert model.score(X[24_000:], y[24_000:]) > 0.97


@pytest.mark.slow
def test_a_learning_rate_alone_compares_dense_and_lazy_adam_where_dense_adam_starves():
    # Clean rank-4 ratings over 1,000 x 1,000 ids, 40 ratings per id. A learning rate alone trains Adam, in its
    # dense and its lazy (sparse rows) form, and keeps the better on the validation split: dense Adam alone
    # stays near the biases' plateau here (R^2 0.71 after these 12 epochs, 0.81 after 30; bench_defaults.py's
    # mf-large-dense 0.47 and mf-large 0.29 at 0.001 / 0.003 / 0.01), lazy Adam reaches 0.97.
    rng = np.random.default_rng(0)
    n_ids, n, rank = 1000, 50_000, 4
    U, V = rng.normal(size=(n_ids, rank)), rng.normal(size=(n_ids, rank))
    bu, bi = rng.normal(size=n_ids), rng.normal(size=n_ids)
    cells = rng.choice(n_ids * n_ids, n, replace=False)
    u, i = cells // n_ids, cells % n_ids
    X, y = np.column_stack([u, n_ids + i]), (U[u] * V[i]).sum(1) + bu[u] + bi[i]
    given = Object2VecRegressor(random_state=0, learning_rate=0.01, epochs=12).fit(X[:40_000], y[:40_000])
    record = given.auto_recipe_
    assert list(record["validation_loss"]) == ["adam", "adam-sparse"] and record["chosen"] == "adam-sparse"
    assert record["settings"]["learning_rate"] == 0.01 and given.net_.token_embedding0.sparse
    assert given.score(X[40_000:], y[40_000:]) > 0.95


def test_one_id_per_side_keeps_the_recipe_with_the_better_validation_loss():
    from skobject2vec._auto import AUTO_RECIPES

    # Planted rank-2 ratings where every id is seen often: the family's Adagrad recipe (tuned on
    # MovieLens's rare items) stops short, Adam at a constant rate fits; the fit measures both on its
    # validation split, keeps the better and says so in auto_recipe_.
    rng = np.random.default_rng(0)
    n_users, n_items, n = 60, 80, 3000
    U, V = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    u, i = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    X, y = np.column_stack([u, n_users + i]), (U[u] * V[i]).sum(1)
    model = Object2VecRegressor(random_state=0, epochs=15).fit(X[:2500], y[:2500])
    recipe = model.auto_recipe_
    assert recipe["chosen"] == min(recipe["validation_loss"], key=recipe["validation_loss"].get)
    assert recipe["settings"]["optimizer"] == ("adagrad" if recipe["chosen"] == "adagrad" else "adam")
    kept = model.score(X[2500:], y[2500:])
    # the recipe kept scores as refitting it alone for the epochs it trained in the comparison (the race may
    # end a recipe before its own early stopping would: RecipeRace)
    for name in recipe["validation_loss"]:
        settings = dict(AUTO_RECIPES["single_ids"][name])
        if settings:  # an Adam recipe, dense unless it says otherwise (else its lazy form is compared with it)
            settings.setdefault("token_embedding_storage_type", "dense")
        alone = Object2VecRegressor(random_state=0, epochs=recipe["epochs"][name], **settings).fit(X[:2500], y[:2500])
        assert not hasattr(alone, "auto_recipe_") or name == "adagrad"
        if name == recipe["chosen"]:
            assert abs(alone.score(X[2500:], y[2500:]) - kept) < 1e-9
    # the Adam recipe joins the ids without abs_diff; a comparator_list the user gives holds for both recipes
    assert model.net_.config["comparator"] == ["hadamard", "concat"] and recipe["settings"]["comparator_list"] == (
        "hadamard, concat")
    given = Object2VecRegressor(random_state=0, epochs=3, comparator_list="hadamard").fit(X[:2500], y[:2500])
    # (3 epochs: Adam's best at its 3rd, too early for the fast Adam to be worth training; Adagrad still improving
    # at its 3rd and last, so lazy Adam at a constant rate trains too)
    assert given.net_.config["comparator"] == ["hadamard"]
    assert set(given.auto_recipe_["epochs"]) == {"adam", "adagrad", "adam-sparse"}
    # Adam, still improving after its 6th epoch, paused there for the fast Adam, which set a lower bar; Adam
    # then went on only until its curve could not reach it (not to the 15-epoch cap, where it still improved),
    # and Adagrad's curve could not reach it either and was stopped early
    assert recipe["chosen"] == "adam-fast" and 6 < recipe["epochs"]["adam"] < 15
    assert recipe["epochs"]["adagrad"] < 15
    # no comparison without a validation split, or when a setting the recipes fix is given
    assert not hasattr(Object2VecRegressor(random_state=0, epochs=2, validation_fraction=None).fit(X, y),
                       "auto_recipe_")
    assert not hasattr(Object2VecRegressor(random_state=0, epochs=2, dropout=0.1).fit(X, y), "auto_recipe_")


def test_sequence_pairs_that_learn_late_also_try_a_faster_rate():
    # Planted topic pairs: Adam at 0.001 still improves after its sixth epoch, so the fit trains Adam at 0.01
    # next and keeps the recipe whose model has the lower validation loss (here the faster one).
    X, y = make_topic_pairs(1_200, seed=0)
    model = Object2VecClassifier(random_state=0, epochs=12).fit(X[:1_000], y[:1_000])
    recipe = model.auto_recipe_
    assert set(recipe["epochs"]) == {"adam", "adam-fast"} and recipe["epochs"]["adam"] > 6
    # the first recipe paused at the epoch that showed it slow, and ended there: it could not catch up
    assert recipe["epochs"]["adam"] < 12
    assert recipe["chosen"] == min(recipe["validation_loss"], key=recipe["validation_loss"].get) == "adam-fast"
    assert recipe["settings"]["learning_rate"] == 0.01 and recipe["settings"]["optimizer"] == "adam"
    assert model.score(X[1_000:], y[1_000:]) > 0.95
    # stopped at its third epoch, before learning late, the first recipe is the only one trained
    early = Object2VecClassifier(random_state=0, epochs=3).fit(X[:1_000], y[:1_000]).auto_recipe_
    assert early["chosen"] == "adam" and early["epochs"] == {"adam": 3}
    # a learning rate given: that rate alone
    assert not hasattr(Object2VecClassifier(random_state=0, epochs=3, learning_rate=0.001).fit(X[:1_000], y[:1_000]),
                       "auto_recipe_")


def test_a_paused_recipe_that_can_still_win_goes_on_as_if_never_paused(monkeypatch, capsys):
    # A follower that cannot learn (Adam at 1e-5): the first recipe, paused at its first late best, goes on
    # and is kept, and its model is the same bits as that recipe trained alone (learning_rate=0.001: the same
    # plan and seed), dropout masks included, though another fit drew from torch's RNG in between.
    from skobject2vec._auto import AUTO_RECIPES

    monkeypatch.setitem(AUTO_RECIPES["sequences"], "adam-fast", {"learning_rate": 1e-5})
    X, y = make_topic_pairs(1_200, seed=0)
    compared = Object2VecClassifier(random_state=0, epochs=12, verbose=1).fit(X[:1_000], y[:1_000])
    out = capsys.readouterr().out
    assert "recipe 'adam' still improving at epoch" in out and "goes on" in out
    recipe = compared.auto_recipe_
    assert recipe["chosen"] == "adam" and recipe["epochs"]["adam"] == 12 and recipe["epochs"]["adam-fast"] < 12
    alone = Object2VecClassifier(random_state=0, epochs=12, learning_rate=0.001).fit(X[:1_000], y[:1_000])
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in compared.history_] == \
        [{k: v for k, v in r.items() if k not in drop} for r in alone.history_]
    for (name, a), b in zip(compared.net_.state_dict().items(), alone.net_.state_dict().values()):
        assert torch.equal(a, b), name


def test_recipes_that_follow_slow_recipes_in_a_chain_each_pause_and_resolve(monkeypatch):
    # "adam" pauses for "adam-slow" (as slow), which pauses for "adam-fast": each paused recipe is resolved
    # (gone on or ended) once the one it waited for is done, back along the chain, and all are compared
    import skobject2vec._auto as auto

    chain = {"adam": {}, "adam-slow": {"learning_rate": 0.0012}, "adam-fast": {"learning_rate": 0.01}}
    monkeypatch.setitem(auto.AUTO_RECIPES, "sequences", chain)
    monkeypatch.setitem(auto.RECIPE_AFTER_SLOW, "adam-slow", "adam")
    monkeypatch.setitem(auto.RECIPE_AFTER_SLOW, "adam-fast", "adam-slow")
    X, y = make_topic_pairs(1_200, seed=0)
    recipe = Object2VecClassifier(random_state=0, epochs=12).fit(X[:1_000], y[:1_000]).auto_recipe_
    assert list(recipe["epochs"]) == ["adam", "adam-slow", "adam-fast"]
    assert 6 < recipe["epochs"]["adam"] < 12 and 6 < recipe["epochs"]["adam-slow"] < 12
    assert recipe["chosen"] == min(recipe["validation_loss"], key=recipe["validation_loss"].get) == "adam-fast"


def test_recipes_compare_the_loss_of_the_model_each_would_keep():
    # a recipe whose weight average was kept is judged by the average's loss, not by its best epoch's:
    # that average is the model the fit would give the user
    from skobject2vec._fit import validation_loss

    bumpy = [{"epoch": 1, "validation:mean_squared_error": 1.5}, {"epoch": 2, "validation:mean_squared_error": 1.3},
             {"epoch": 3, "validation:mean_squared_error": 1.4}]
    averaged = {"epochs": [1, 2, 3], "validation:mean_squared_error": 1.1}
    assert validation_loss(bumpy) == 1.3
    assert validation_loss(bumpy[:2] + [dict(bumpy[2], weight_averaging=dict(averaged, kept=True))]) == 1.1
    assert validation_loss(bumpy[:2] + [dict(bumpy[2], weight_averaging=dict(averaged, kept=False))]) == 1.3
    # a classifier's average is kept by accuracy: its cross-entropy is the kept model's even where higher
    classes = [{"epoch": 1, "validation:cross_entropy": 0.5, "validation:accuracy": 0.8},
               {"epoch": 2, "validation:cross_entropy": 0.6, "validation:accuracy": 0.8,
                "weight_averaging": {"epochs": [1, 2], "validation:cross_entropy": 0.55,
                                     "validation:accuracy": 0.85, "kept": True}}]
    assert validation_loss(classes) == 0.55
    assert validation_loss([]) == float("inf")


def test_the_fast_adam_recipe_trains_only_after_a_slow_first_adam():
    from skobject2vec._auto import SLOW_BEST_EPOCH
    from skobject2vec._fit import _worth_training

    def trained(curve):
        return {"adam": _history(curve)}

    overfit = [0.81, 0.79, 0.77, 0.775, 0.81, 0.86]  # MovieLens: best at epoch 3, then worse
    slow = [4.1, 3.9, 3.0, 2.0, 1.7, 1.6, 1.55, 1.5]  # planted history ratings: still improving
    assert not _worth_training("adam-fast", trained(overfit), set())
    assert _worth_training("adam-fast", trained(slow), set()) and len(slow) > SLOW_BEST_EPOCH
    assert _worth_training("adagrad", trained(overfit), set()) and _worth_training("adam", {}, set())
    assert _worth_training("adam-fast", {}, set())  # the recipe it follows did not train (one plan): nothing to judge
    # Lazy Adam at a constant rate follows the ratings recipe only where that one was still improving at its last
    # epoch and had not converged (the race ended it on its own convergence: MovieLens)
    adagrad = {"adagrad": trained(slow)["adam"]}
    assert _worth_training("adam-sparse", adagrad, set())
    assert not _worth_training("adam-sparse", adagrad, {"adagrad"})
    assert not _worth_training("adam-sparse", {"adagrad": trained(overfit)["adam"]}, set())
    # without the ratings recipe among those compared (an explicit rate: its dense Adam, then its lazy one), it trains
    assert _worth_training("adam-sparse", trained(overfit), set())


def test_a_warm_start_continues_its_network_without_comparing_recipes():
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.integers(0, 30, 3000), rng.integers(30, 70, 3000)])
    y = rng.normal(size=3000)
    model = Object2VecRegressor(random_state=0, epochs=2, warm_start=True).fit(X[:400], y[:400])  # no split (below 500)
    assert not hasattr(model, "auto_recipe_")
    first = model.net_
    model.fit(X, y)  # 3,000 records: a validation split, but the fitted network is continued
    assert not hasattr(model, "auto_recipe_") and model.net_ is first and len(model.history_) > 2


def test_a_fit_that_kept_a_recipe_with_its_own_comparators_continues_with_them(monkeypatch):
    # auto_recipe_ keeps a recipe's comparators as SageMaker's string ("hadamard, concat"); a warm start
    # and partial_fit continue the kept recipe's network, so they read them back as its operations
    import skobject2vec._auto as auto

    adam = {"optimizer": "adam", "learning_rate": 0.003, "comparator_list": ("hadamard", "concat")}
    monkeypatch.setitem(auto.AUTO_RECIPES, "single_ids", {"adam": adam, "adam-b": dict(adam, learning_rate=0.01)})
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 30, 1_200), rng.integers(30, 70, 1_200)])
    y = rng.normal(size=1_200)
    model = Object2VecRegressor(random_state=0, epochs=2).fit(X, y)
    assert model.auto_recipe_["settings"]["comparator_list"] == "hadamard, concat"
    first = model.net_
    model.set_params(warm_start=True).fit(X, y)
    assert model.net_ is first and model.net_.config["comparator"] == ["hadamard", "concat"]
    assert len(model.history_) > 2
    model.partial_fit(X[:100], y[:100])
    assert model.net_.config["comparator"] == ["hadamard", "concat"] and np.isfinite(model.predict(X[:5])).all()


@pytest.mark.parametrize("curve, bar, stopped_at", [
    # flattening (halving steps) towards 2.0, against a bar of 1.2: at epoch 7 its last 3 epochs gained
    # 0.22 against 1.75 the 3 before; a tail shrinking at that ratio gains 0.03 more, far from the bar
    ([4.0, 3.0, 2.5, 2.25, 2.125, 2.06, 2.03, 2.015, 2.008], 1.2, 7),
    # slower to flatten: at epoch 7 (0.9 gained against 1.2 the 3 epochs before) its tail could still
    # reach the bar; at epoch 8 (0.55 against 1.2) it cannot, though its rate kept up would
    ([4.0, 3.6, 3.2, 2.8, 2.4, 2.0, 1.9, 1.85, 1.8], 1.2, 8),
    ([4.0, 3.0, 2.0, 1.0, 0.5], 1.2, None),  # steep: it will pass the bar (and does)
    # bumpy, not slowing down: a bad epoch never stops it
    ([4.0, 3.5, 3.0, 3.2, 2.5, 2.0, 2.2, 1.5], 1.2, None),
    ([0.9, 0.85, 0.84, 0.9, 0.95], float("inf"), None),  # the first recipe (no bar) is never stopped
])
def test_a_compared_recipe_stops_once_its_curve_cannot_reach_the_best_before_it(curve, bar, stopped_at):
    _assert_race_stops(race_args=(bar, 20), curve=curve, stopped_at=stopped_at)


@pytest.mark.parametrize("decay, stopped_at", [(0.8, 4), (1.0, None)])
def test_a_recipe_whose_learning_rate_decays_is_projected_under_its_schedule(decay, stopped_at):
    # mf-clean's Adagrad curve (seed 0) against Adam's best 0.075: with the rate times 0.8 per epoch the
    # 26 epochs left hold about as much learning rate as the last three, so its gain of 1.58 over them
    # cannot bring it from 2.62 to the bar; at a constant rate it could (8.7 windows left)
    _assert_race_stops(race_args=(0.075, 30, decay), curve=[4.197, 3.936, 3.287, 2.617], stopped_at=stopped_at)


#: MovieLens's Adagrad curve (seed 0) as it ran to the patience's stop: its best, 0.7437 at epoch 21,
#: is 0.0005 below epoch 16's
MOVIELENS_ADAGRAD = [0.8656, 0.8270, 0.8083, 0.7878, 0.7774, 0.7660, 0.7571, 0.7546, 0.7508, 0.7486, 0.7471,
                     0.7464, 0.7452, 0.7448, 0.7446, 0.7442, 0.7440, 0.7439, 0.7438, 0.7437, 0.7437]


MOVIELENS_ADAM = [0.8108, 0.7897, 0.7712, 0.7745, 0.8116, 0.8559, 0.8740, 0.8908]


MF_HISTORY_ADAM = [4.1323, 4.1197, 4.0054, 3.5614, 2.6137, 1.6756, 1.3223, 1.2158, 1.1617, 1.1513, 1.1397, 1.1417]


@pytest.mark.parametrize("race_args, curve, stopped_at", [
    # the rate times 0.8 per epoch: at epoch 16 (0.0010 gained against 0.0034 the window before) the tail of
    # its shrinking gains holds less than the tolerance
    ((float("inf"), 30, 0.8, 0.001), MOVIELENS_ADAGRAD, 16),
    ((float("inf"), 30, 0.8, 0.0), MOVIELENS_ADAGRAD, None),  # without a tolerance it runs to the patience
    # MovieLens's Adam (its rate times 0.9 per epoch), best at epoch 3 and overfitting since: one window
    # without a gain ends it, not the patience's 5 epochs
    ((float("inf"), 30, 0.9, 0.001), MOVIELENS_ADAM, 6),
    # At a constant rate the fit's own early stopping ends a recipe, not the race: the same curve runs on
    ((float("inf"), 30, 1.0, 0.001), MOVIELENS_ADAM, None),
    # mf-history's fast Adam at a constant 0.01 (seed 1): no gain over epochs 6-8 (the race stopped it there
    # until session 33, test R^2 0.818), a lower weight average by its patience's end (0.823)
    ((float("inf"), 30, 1.0, 0.001), [4.3178, 2.9373, 1.6779, 1.337, 1.2588, 1.3015, 1.2748, 1.3289], None),
    # still improving by more than the tolerance per window: not stopped
    ((float("inf"), 30, 1.0, 0.001), [0.9, 0.85, 0.84, 0.835, 0.832, 0.829, 0.826], None),
    # mf-history's Adam (seed 0): a steep fall, then 0.022 in the last window against 0.51 the window before.
    # Under a decaying rate the tail of such shrinking gains ends it
    ((float("inf"), 30, 1.0, 0.001), MF_HISTORY_ADAM, None),
    ((float("inf"), 30, 0.8, 0.001), MF_HISTORY_ADAM, 12),
])
def test_a_compared_recipe_stops_once_it_cannot_improve_its_own_best_by_the_tolerance(race_args, curve, stopped_at):
    _assert_race_stops(race_args=race_args, curve=curve, stopped_at=stopped_at)


#: Validation curves of the Adagrad recipe (rate x 0.85 per epoch, 30 epochs allowed), seed 0: MovieLens 90/10,
#: where its gains shrink geometrically, and clean planted rank-4 ratings over 1,000 x 1,000 ids (80 per id),
#: where they shrink only as the rate does.
MOVIELENS_ADAGRAD = [0.8572, 0.8147, 0.8004, 0.782, 0.7745, 0.7637, 0.7573, 0.753, 0.7469, 0.7449, 0.7434, 0.7421,
                     0.7405, 0.7391, 0.7388, 0.7376, 0.7375]
STARVED_ADAGRAD = [4.4539, 4.0457, 2.6257, 1.6392, 1.2206, 1.0298, 0.9251, 0.8576, 0.8263, 0.7942, 0.7711, 0.7584,
                   0.7448, 0.7364, 0.7308, 0.7254, 0.7191, 0.7175, 0.7139, 0.7105, 0.7091, 0.7073, 0.7064, 0.7054,
                   0.7045, 0.7038, 0.7031, 0.7026, 0.702, 0.7015]


def test_a_recipe_ended_near_its_last_epoch_still_gaining_has_not_converged():
    # Both curves end with less than the tolerance to gain by epoch 30 (the race stops them), but only MovieLens's
    # could not gain it with any number of epochs: the planted curve ran out of epochs, not of progress, so a
    # starved recipe's follower (RECIPE_AFTER_STARVED) trains after it.
    from skobject2vec._fit import _worth_training

    for curve, stopped_at, reason in ((MOVIELENS_ADAGRAD, 17, "converged"), (STARVED_ADAGRAD, 28, "last epochs")):
        race = _assert_race_stops(race_args=(float("inf"), 30, 0.85, 0.001), curve=curve, stopped_at=stopped_at)
        assert race.stopped_by == reason
        history = {"adagrad": _history(curve[:stopped_at])}
        converged = {"adagrad"} if race.stopped_by == "converged" else set()
        assert _worth_training("adam-sparse", history, converged) == (reason == "last epochs")
    # stopped by the bar, it is the bar's
    race = _assert_race_stops(race_args=(0.5, 30, 0.85, 0.001), curve=STARVED_ADAGRAD, stopped_at=7)
    assert race.stopped_by == "bar"


def _history(curve):
    """A fit's history with one validation loss per epoch: ``curve``'s."""
    return [{"epoch": e, "validation:mean_squared_error": v} for e, v in enumerate(curve, start=1)]


def _assert_race_stops(race_args, curve, stopped_at):
    from skobject2vec._fit import RecipeRace
    from skobject2vec.training import Loop

    race = RecipeRace(*race_args)
    loop = Loop(net=None, optimizers=[], settings=None, metric="mean_squared_error")
    for epoch, loss in enumerate(curve, start=1):
        loop.history.append({"epoch": epoch, "validation:mean_squared_error": loss})
        race.on_epoch_end(loop, loop.history[-1])
        if loop.stop:
            break
    assert race.stopped_at == stopped_at and loop.stop == (stopped_at is not None)
    return race


def test_an_id_followed_by_context_is_told_from_sentences():
    from skobject2vec._auto import id_with_context
    from skobject2vec.data.records import records_to_pairs

    def side(sequences):
        pairs = records_to_pairs([{"in0": s, "in1": [0]} for s in sequences])
        return id_with_context(pairs.in0.values, pairs.in0.offsets)

    # users 0-2 and the items (10+) they rated: no first token recurs later
    assert side([[0, 10, 11], [1, 11], [2], [0, 12, 10, 13]])
    assert not side([[5, 6, 7], [6, 5], [7]])  # words: a first token recurs at a later position
    assert not side([[0], [1], [2]])  # single ids: no context
    assert not side([[0, 10], [10, 11]])  # a context token that is another record's head
    assert not side([[7, 10, 11], [7, 12]])  # one first token for every record: a marker, not ids


def test_ids_with_context_train_as_matrix_factorisation_with_the_id_kept_apart():
    # ratings of [user] + the items the user rated vs [item] (SVD++'s inputs): not sentences, not a
    # bag where the user's id is one token among many, but biased matrix factorisation with pooling
    # "head_mean" (the user's vector plus the mean of the items' vectors) and the recipes compared
    rng = np.random.default_rng(0)
    n_users, n_items, n = 40, 60, 2000
    users, items = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    rated = {u: sorted(set(items[users == u].tolist()))[:8] for u in range(n_users)}
    X = [{"in0": [int(u)] + [n_users + i for i in rated[int(u)]], "in1": [int(i)]} for u, i in zip(users, items)]
    y = rng.normal(size=n)
    model = Object2VecRegressor(random_state=0, epochs=2).fit(X, y)
    config = model.net_.config
    assert config["pooling"] == "head_mean" and config["mlp_layers"] == 0 and not config["shared"]
    assert {"adam", "adagrad"} <= set(model.auto_recipe_["epochs"])
    # a sentence pair keeps the sentence rules
    sentences = [{"in0": [1, 2, 3], "in1": [3, 1]}, {"in0": [2, 1], "in1": [1, 4, 2]}, {"in0": [4, 2], "in1": [2, 3]}]
    words = Object2VecRegressor(random_state=0, epochs=1).fit(sentences * 10, np.arange(30.))
    assert words.net_.config["pooling"] == "mean" and words.net_.config["shared"]
