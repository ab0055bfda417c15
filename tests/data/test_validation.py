"""Bad input gets a ValueError that says what is wrong and where."""

import numpy as np
import pytest

from skobject2vec import Object2VecClassifier, Object2VecRegressor

GOOD = [{"in0": [1, 2], "in1": [3]}, {"in0": [4], "in1": [5, 6]}]


def fit(X, y=(0, 1), **params):
    config = dict(epochs=1, enc_dim=4, enc0_token_embedding_dim=4, mlp_dim=4)
    return Object2VecClassifier(**{**config, **params}).fit(X, list(y))


@pytest.mark.parametrize("X, message", [
    ([{"in0": [1, 2.5], "in1": [3]}, GOOD[1]],
     r"record 0, field 'in0': token ids must be integers below 2\*\*53, got 2.5"),
    ([GOOD[0], {"in0": [4], "in1": [5, -6]}], r"Negative values in data.*record 1, field 'in1'.*-6"),
    ([GOOD[0], {"in0": [4]}], r"record 1, field 'in1': missing key 'in1'"),
    ([{"in1": [3]}, GOOD[1]], r"record 0, field 'in0': missing key 'in0'"),
    ([GOOD[0], {"in0": [], "in1": [5]}], r"record 1, field 'in0': empty sequence"),
    ([GOOD[0], {"in0": [[4, 5]], "in1": [5]}], r"record 1, field 'in0'.*nested lists"),
    ([GOOD[0], {"in0": "4 5", "in1": [5]}], r"record 1, field 'in0': expected a list of integer token ids"),
    ([GOOD[0], {"in0": ["a"], "in1": [5]}], r"record 1, field 'in0'.*element 'a'"),
    ([GOOD[0], {"in0": [float("nan")], "in1": [5]}], r"record 1, field 'in0': token ids must be integers"),
    ([GOOD[0], "not a record"], r"record 1: expected a record"),
    ([GOOD[0], {"in0": ["5"], "in1": [5]}], r"record 1, field 'in0'.*element '5'"),
    ([GOOD[0], {"in0": [1e30], "in1": [5]}], r"record 1, field 'in0': token ids must be integers below 2\*\*53"),
    ([GOOD[0], {"in0": [2 ** 70], "in1": [5]}], r"record 1, field 'in0': token ids must be integers below 2\*\*53"),
])
def test_bad_records_are_located(X, message):
    with pytest.raises(ValueError, match=message):
        fit(X)


def test_ids_at_or_above_a_given_vocab_size():
    with pytest.raises(ValueError, match=r"record 1, field 'in0': token id 9 is not less than vocab_size=5"):
        fit([GOOD[0], {"in0": [9], "in1": [1]}], enc0_vocab_size=5)
    # enc1 inherits enc0's vocabulary size (SageMaker's enc1_network='enc0')
    with pytest.raises(ValueError, match=r"record 0, field 'in1': token id 7 is not less than vocab_size=5"):
        fit([{"in0": [1], "in1": [7]}, GOOD[1]], enc0_vocab_size=5)


def test_length_mismatch():
    with pytest.raises(ValueError, match="X has 2 records but y has 3"):
        fit(GOOD, y=(0, 1, 1))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        fit(np.array([[1, 2], [3, 4]]), y=(0, 1, 1))


def test_single_class():
    with pytest.raises(ValueError, match="only one class"):
        fit(GOOD, y=(1, 1))


def test_array_errors():
    with pytest.raises(ValueError, match="non-integral values such as \\[1.5\\]"):
        fit(np.array([[1.5, 2], [3, 4]]))
    with pytest.raises(ValueError, match="Negative values in data"):
        fit(np.array([[-1, 2], [3, 4]]))
    with pytest.raises(ValueError, match="minimum of 2 is required"):
        fit(np.array([[1], [3]]))


def test_invalid_hyperparameters_are_named():
    """scikit-learn's InvalidParameterError (a ValueError), from constraints generated from the table."""
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match=r"The 'enc_dim' parameter of Object2VecClassifier must be an "
                                                    r"int in the range \[4, 10000\] or a str among {'auto'}. "
                                                    r"Got 2 instead"):
        fit(GOOD, enc_dim=2)
    with pytest.raises(ValueError, match="'optimizer' parameter of Object2VecClassifier .*Got 'lbfgs'"):
        fit(GOOD, optimizer="lbfgs")
    with pytest.raises(ValueError, match="'enc0_layers' parameter .*range \\[1, 4\\] or a str among {'auto'}"):
        fit(GOOD, enc0_layers=9)
    with pytest.raises(ValueError, match="'enc0_layers'"):  # a bool is no layer count (the table's own check)
        fit(GOOD, enc0_layers=True)


def test_id_above_the_vocabulary_limit_names_its_record():
    records = [{"in0": [1, 2], "in1": [3]}, {"in0": [3, 5_000_000], "in1": [4]}] * 3
    with pytest.raises(ValueError, match=r"record 1, field 'in0' holds token id 5000000, which would need a "
                                         r"vocabulary of 5,000,001 rows"):
        Object2VecClassifier(epochs=1).fit(records, [0, 1] * 3)


def test_regressor_rejects_negative_sampling():
    with pytest.raises(ValueError, match="negative_sampling_rate applies to classification"):
        Object2VecRegressor(negative_sampling_rate=2).fit(GOOD, [0.5, 1.0])


def test_unknown_validation_label():
    with pytest.raises(ValueError, match=r"y_val\[0\] = 7 is not one of the training classes"):
        Object2VecClassifier(epochs=1).fit(GOOD, [0, 1], X_val=GOOD[:1], y_val=[7])


def test_device_errors_are_clear():
    import torch

    if torch.cuda.is_available():  # pragma: no cover
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="CUDA is not available"):
        fit(GOOD, device="cuda")
    with pytest.raises(ValueError, match="'device'"):
        fit(GOOD, device="tpu9")


def test_ids_beyond_the_vocabulary_limit_are_refused_before_allocating():
    with pytest.raises(ValueError, match=r"field 'in1' holds token id 9999999999.*above SageMaker's limit"):
        fit([GOOD[0], {"in0": [4], "in1": [9_999_999_999]}])
    # The record named is the training record holding the id, not a larger id's zero-weight record.
    X = [{"in0": [1], "in1": [9_999_999_999]}, {"in0": [2], "in1": [5_000_000_000]}, {"in0": [3], "in1": [4]}]
    with pytest.raises(ValueError, match=r"record 1, field 'in1' holds token id 5000000000"):
        Object2VecClassifier(epochs=1).fit(X, [0, 1, 0], sample_weight=[0.0, 1.0, 1.0])


def test_conversion_in_chunks_locates_errors_and_keeps_values(monkeypatch):
    from skobject2vec.data import records as _validation

    monkeypatch.setattr(_validation, "_CHUNK", 3)
    sequences = [[1, 2], [3, 4, 5, 6], [7], [8.0, 9]]
    ragged = _validation.ragged_from_sequences(sequences, "in0")
    assert ragged.to_lists() == [[1, 2], [3, 4, 5, 6], [7], [8, 9]]
    with pytest.raises(ValueError, match="record 3, field 'in0': token ids must be integers below 2\\*\\*53, got 9.5"):
        _validation.ragged_from_sequences(sequences[:3] + [[8, 9.5]], "in0")
    with pytest.raises(ValueError, match="record 2, field 'in0'.*element 'x'"):
        _validation.ragged_from_sequences([[1, 2], [3, 4, 5, 6], ["x"]], "in0")


def test_records_of_plain_ints_and_of_other_number_types_parse_alike():
    # Lists of Python ints in dicts of exactly in0/in1 take one-pass conversions; any other shape or
    # element type the per-record and chunked ones. Both give the same arrays, and the fast path still
    # refuses what the slow one refuses.
    from skobject2vec.data.records import records_to_pairs

    plain = [{"in0": [1, 2, 2 ** 52], "in1": [3]}, {"in0": [4], "in1": [5, 6]}]
    others = [{"in1": (3,), "in0": np.array([1, 2, 2 ** 52])}, {"in0": [np.int32(4)], "in1": [5.0, 6]}]
    fast, slow = records_to_pairs(plain), records_to_pairs(others)
    for side in ("in0", "in1"):
        assert getattr(fast, side).to_lists() == getattr(slow, side).to_lists()
        assert getattr(fast, side).values.dtype == np.int64
    with pytest.raises(ValueError, match=r"record 0, field 'in0'.*booleans are not token ids"):
        records_to_pairs([{"in0": [1, True], "in1": [3]}])
    with pytest.raises(ValueError, match=r"record 1, field 'in0': token ids must be integers below 2\*\*53"):
        records_to_pairs([plain[0], {"in0": [2 ** 53], "in1": [3]}])
    with pytest.raises(ValueError, match=r"record 1.*'in1'"):
        records_to_pairs([plain[0], {"in0": [1], "inl": [3]}])  # a third key's lookalike, not in1


def test_empty_dataframe_and_non_finite_hyperparameters():
    import pandas as pd

    clf = fit(GOOD)
    with pytest.raises(ValueError, match="no records"):
        clf.predict(pd.DataFrame({"in0": [], "in1": []}))
    with pytest.raises(ValueError, match="'epochs' parameter of Object2VecClassifier .*Got inf"):
        fit(GOOD, epochs=float("inf"))
