"""TextPairTokenizer: vocabulary, input shapes, Pipeline use and the safe artifact."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from support import FAST

import skobject2vec
from skobject2vec import Object2VecClassifier, Object2VecRegressor, TextPairTokenizer
from skobject2vec.io.artifact import _config_digest

TOPIC_WORDS = [
    ["red", "apple", "cherry", "blood", "ruby", "tomato"],
    ["blue", "sky", "ocean", "sea", "sapphire", "wave"],
    ["green", "grass", "leaf", "frog", "emerald", "moss"],
]


def sentence_pairs(n, seed=0):
    """Planted rule: similarity 1 when both sentences talk about one topic, else 0."""
    rng = np.random.default_rng(seed)

    def sentence(topic):
        return " ".join(rng.choice(TOPIC_WORDS[topic], rng.integers(2, 6))).capitalize() + "."

    topics = rng.integers(0, 3, (n, 2))
    return [(sentence(a), sentence(b)) for a, b in topics], (topics[:, 0] == topics[:, 1]).astype(float)


#: Words only, unknown words to id 0: the vocabulary these tests spell out.
WORDS = dict(char_ngrams=None, oov_buckets=0)


def test_vocabulary_by_frequency_with_unknown_zero():
    tok = TextPairTokenizer(**WORDS).fit([("The cat, the hat!", "A cat"), ("the end", "Cat")])
    assert tok.vocabulary_["<unk>"] == 0 == tok.unknown_id_
    assert tok.vocabulary_["cat"] == 1 and tok.vocabulary_["the"] == 2  # 3 times each; ties alphabetical
    assert set(tok.vocabulary_) == {"<unk>", "the", "cat", ",", "hat", "!", "a", "end"}
    assert tok.vocab_size_ == 8
    assert tok.transform([("the dog", "")]) == [{"in0": [2, 0], "in1": [0]}]  # empty text: one unknown id


def test_min_count_max_vocab_and_case():
    texts = [("a a a b b c", "a b")]
    assert set(TextPairTokenizer(min_count=2, **WORDS).fit(texts).vocabulary_) == {"<unk>", "a", "b"}
    assert TextPairTokenizer(max_vocab=1, **WORDS).fit(texts).vocabulary_ == {"<unk>": 0, "a": 1}
    cased = TextPairTokenizer(lowercase=False).fit([("Cat cat", "x")])
    assert {"Cat", "cat"} <= set(cased.vocabulary_)
    words_only = TextPairTokenizer(token_pattern=r"[a-z]+", **WORDS).fit([("it's 42!", "ok")])
    assert set(words_only.vocabulary_) == {"<unk>", "it", "s", "ok"}
    with pytest.raises(ValueError, match="min_count must be an integer >= 1"):
        TextPairTokenizer(min_count=0).fit(texts)
    with pytest.raises(ValueError, match="max_vocab must be None or an integer >= 1"):
        TextPairTokenizer(max_vocab=0).fit(texts)


def test_character_ngrams_give_unseen_forms_of_a_word_known_ids():
    tok = TextPairTokenizer(oov_buckets=0).fit([("Running fast", "a cat")])
    assert tok.tokens("Running") == ["running", "##<ru", "##run", "##unn", "##nni", "##nin", "##ing", "##ng>"]
    assert tok.tokens("a cat") == ["a", "cat"]  # words of n letters or fewer stay whole
    assert tok.tokenize("Running") == ["running"]  # tokenize: the words alone
    ids = tok.encode("runner")
    vocab = tok.vocabulary_
    assert ids[0] == 0  # the word itself is unknown ...
    assert ids[1:3] == [vocab["##<ru"], vocab["##run"]]  # ... but shares its first 3-grams with "running"
    assert TextPairTokenizer(char_ngrams=4).tokens("cats horse") == [
        "cats", "horse", "##<hor", "##hors", "##orse", "##rse>"]
    with pytest.raises(ValueError, match="char_ngrams must be None or an integer >= 1"):
        TextPairTokenizer(char_ngrams=0).fit(["a"])


def test_oov_buckets_give_each_unseen_word_a_stable_id_of_its_own():
    tok = TextPairTokenizer(char_ngrams=None, oov_buckets=50).fit([("the cat", "a dog")])
    assert tok.vocab_size_ == 1 + 50 + 4 and tok.oov_buckets_ == 50
    assert sorted(tok.vocabulary_.values()) == [0, 51, 52, 53, 54]  # buckets 1-50 come before the words
    (record,) = tok.transform([("zebra and lion", "a zebra")])
    zebra, other = record["in0"][0], record["in0"][2]
    assert record["in1"] == [tok.vocabulary_["a"], zebra]  # the same unseen word: the same id on either side
    assert zebra != other and all(1 <= i <= 50 for i in (zebra, other))
    assert tok.encode("") == [0]  # no word at all: the unknown id
    # The ids do not depend on the process (str hashes are salted per process).
    code = ("import pickle, sys; tok = pickle.loads(sys.stdin.buffer.read()); "
            "print(tok.encode('zebra and lion'))")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(tok), capture_output=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}, check=True).stdout
        assert json.loads(out) == record["in0"]
    with pytest.raises(ValueError, match="oov_buckets must be an integer >= 0"):
        TextPairTokenizer(oov_buckets=-1).fit(["a"])


def test_a_model_predicts_on_ids_of_unseen_words(text_data):
    X, y, _, _ = text_data
    pipe = make_pipeline(TextPairTokenizer(oov_buckets=20), Object2VecRegressor(**{**FAST, "epochs": 1}))
    pipe.fit(X, y)
    net_rows = pipe[-1].vocab_sizes_[0]
    assert net_rows == pipe[0].vocab_size_  # the buckets sit below the words: the table has their rows
    assert np.isfinite(pipe.predict([("Zyzzyva quux.", "Quux zyzzyva.")])).all()


def test_artifacts_from_before_ngrams_and_buckets_keep_their_ids():
    old = {"params": {"lowercase": True, "token_pattern": r"\w+|[^\w\s]", "min_count": 1, "max_vocab": None,
                      "vocabulary": None, "unknown_id": None},
           "vocabulary": {"<unk>": 0, "cat": 1, "running": 2}, "unknown_id": 0}
    tok = TextPairTokenizer._from_artifact_state(old)
    assert tok.encode("running zebra cat") == [2, 0, 1] and tok.vocab_size_ == 3


def test_fixed_vocabulary(tmp_path):
    vocab = {"<pad>": 0, "<unk>": 1, "cat": 4, "sat": 5}
    tok = TextPairTokenizer(vocabulary=vocab).fit([("anything", "at all")])
    assert tok.vocabulary_ == vocab and tok.unknown_id_ == 1 and tok.vocab_size_ == 6
    assert tok.transform([("Cat sat on", "x")]) == [{"in0": [4, 5, 1], "in1": [1]}]
    path = tok.save_vocabulary(tmp_path / "vocab.json")  # usable as enc0_vocab_file
    assert json.loads(path.read_text()) == vocab
    assert TextPairTokenizer(vocabulary={"a": 3}, unknown_id=9).fit(["a"]).transform(["a b"]) == [{"in0": [3, 9]}]
    with pytest.raises(ValueError, match="ids must be integers >= 0"):
        TextPairTokenizer(vocabulary={"a": -1}).fit(["a"])


@pytest.mark.parametrize("shape", ["tuples", "lists", "array", "dataframe", "named-dataframe", "records"])
def test_input_shapes(shape):
    pairs = [("red apple", "blue sky"), ("green leaf", "red sea")]
    X = {
        "tuples": pairs,
        "lists": [list(p) for p in pairs],
        "array": np.array(pairs, dtype=object),
        "dataframe": pd.DataFrame(pairs, columns=["question", "answer"]),
        # columns chosen by name, not position
        "named-dataframe": pd.DataFrame({"in1": [b for _, b in pairs], "in0": [a for a, _ in pairs]}),
        "records": [{"in0": a, "in1": b} for a, b in pairs],
    }[shape]
    tok = TextPairTokenizer().fit(pairs)
    expected = TextPairTokenizer().fit(pairs).transform(pairs)
    assert tok.transform(X) == expected
    assert TextPairTokenizer().fit_transform(X) == expected


def test_single_texts_for_embeddings():
    tok = TextPairTokenizer(**WORDS).fit([("red apple", "blue sky")])
    single = tok.transform(["red sky", "apple"])
    assert single == [{"in0": [tok.vocabulary_["red"], tok.vocabulary_["sky"]]}, {"in0": [tok.vocabulary_["apple"]]}]
    assert tok.transform(pd.Series(["red sky", "apple"])) == single
    assert tok.transform(np.array(["red sky", "apple"])) == single
    assert tok.transform([{"in1": "red sky"}]) == [{"in1": single[0]["in0"]}]  # enc1's side
    assert tok.encode("apple red") == [tok.vocabulary_["apple"], tok.vocabulary_["red"]]


@pytest.mark.parametrize("X,message", [
    ("a single string", "got a single string; wrap it in a list"),
    ([], "No texts"),
    ([("a", "b", "c")], r"row 0: expected a text or a \(text0, text1\) pair"),
    ([("a", "b"), ("c",)], "same number of texts"),
    ([("a", 3)], "Expected a text \\(str\\), got int 3"),
    ([{"text": "a"}], "need an 'in0' and/or 'in1' key"),
    ([{"in0": "a"}, {"in1": "b"}], r"record 1: expected the keys \['in0'\]"),
])
def test_bad_input_messages(X, message):
    with pytest.raises(ValueError, match=message):
        TextPairTokenizer().fit(X)


def test_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        TextPairTokenizer().transform(["a"])


def test_sklearn_clone_and_params():
    tok = TextPairTokenizer(min_count=2, max_vocab=10)
    assert clone(tok).get_params() == tok.get_params()
    assert not hasattr(clone(tok.fit([("a a", "a")])), "vocabulary_")


@pytest.fixture(scope="module")
def text_data():
    X, y = sentence_pairs(600)
    return X[:500], y[:500], X[500:], y[500:]


@pytest.fixture(scope="module")
def fitted_pipeline(text_data):
    X, y, _, _ = text_data
    pipe = make_pipeline(TextPairTokenizer(), Object2VecRegressor(**dict(FAST, enc0_network="pooled_embedding",
                                                                         epochs=10)))
    return pipe.fit(X, y)


def test_pipeline_learns_from_text(fitted_pipeline, text_data):
    _, _, X_test, y_test = text_data
    assert fitted_pipeline.score(X_test, y_test) > 0.8
    embeddings = fitted_pipeline.transform(["Red apple cherry.", "Blue sea wave."])
    assert embeddings.shape == (2, 16)  # single texts: enc0 embeddings
    pairs = fitted_pipeline.transform(X_test[:3])
    assert pairs.shape == (3, 32)


def test_pipeline_classifier_with_tied_table(text_data):
    X, y, X_test, y_test = text_data
    pipe = make_pipeline(TextPairTokenizer(), Object2VecClassifier(**dict(
        FAST, enc0_network="pooled_embedding", epochs=10), tied_token_embedding_weight=True))
    pipe.fit(X, y.astype(int))
    net = pipe[-1].net_
    assert net.token_table(0) is net.token_table(1)
    assert pipe[-1].vocab_sizes_[0] == pipe[0].vocab_size_
    assert pipe.score(X_test, y_test.astype(int)) > 0.85


def test_pipeline_artifact_round_trip(fitted_pipeline, text_data, tmp_path):
    _, _, X_test, _ = text_data
    path = skobject2vec.save(fitted_pipeline, tmp_path / "model")
    config = json.loads((path / "config.json").read_text())
    assert config["pipeline"]["steps"][0]["class"] == "TextPairTokenizer"
    assert config["pipeline"]["steps"][0]["state"]["vocabulary"] == fitted_pipeline[0].vocabulary_
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]  # nothing pickled
    loaded = skobject2vec.load(path)
    assert [name for name, _ in loaded.steps] == [name for name, _ in fitted_pipeline.steps]
    assert loaded[0].get_params() == fitted_pipeline[0].get_params()
    assert loaded[0].vocabulary_ == fitted_pipeline[0].vocabulary_
    assert np.array_equal(loaded.predict(X_test), fitted_pipeline.predict(X_test))  # bit-identical
    texts = ["Green moss frog.", "never seen words"]
    assert np.array_equal(loaded.transform(texts), fitted_pipeline.transform(texts))
    # pickle keeps working too
    assert np.array_equal(pickle.loads(pickle.dumps(fitted_pipeline)).predict(X_test), fitted_pipeline.predict(X_test))


def test_only_safe_steps_are_saved(fitted_pipeline, tmp_path):
    from sklearn.pipeline import Pipeline

    unsafe = Pipeline([("scale", StandardScaler()), ("model", fitted_pipeline[-1])])
    with pytest.raises(ValueError, match=r"step 'scale' \(StandardScaler\) cannot be stored in a safe artifact"):
        skobject2vec.save(unsafe, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    config_path = skobject2vec.save(fitted_pipeline, tmp_path / "m") / "config.json"
    config = json.loads(config_path.read_text())
    config["pipeline"]["steps"][0]["class"] = "os.system"
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json: does not match its digest"):  # an edit is refused
        skobject2vec.load(tmp_path / "m")
    config["config_sha256"] = _config_digest(config)  # and a deliberate one, digest recomputed, too
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="Unknown pipeline step class 'os.system'"):
        skobject2vec.load(tmp_path / "m")


def test_pretrained_vectors_through_the_tokenizer_vocabulary(tmp_path, text_data):
    """Text -> ids with the vocabulary of a GloVe file, whose vectors fill a frozen table."""
    X, y, X_test, y_test = text_data
    words = sorted({w for topic in TOPIC_WORDS for w in topic})
    vocab = {"<unk>": 0, ".": 1, **{w: i + 2 for i, w in enumerate(words)}}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 8))
    lines = [f"{w} " + " ".join(f"{v:.5f}" for v in centers[t] + 0.1 * rng.normal(size=8))
             for t, topic in enumerate(TOPIC_WORDS) for w in topic]
    (tmp_path / "glove.txt").write_text("\n".join(lines) + "\n")
    est = Object2VecRegressor(**dict(FAST, enc0_network="pooled_embedding", enc_dim=8, epochs=10,
                                     enc0_token_embedding_dim=300, enc0_pretrained_embedding_file=str(
                                         tmp_path / "glove.txt"), enc0_vocab_file=str(tmp_path / "vocab.json")))
    pipe = make_pipeline(TextPairTokenizer(vocabulary=vocab), est).fit(X, y)
    assert not pipe[-1].net_.token_table(0).weight.requires_grad
    assert pipe.score(X_test, y_test) > 0.8
