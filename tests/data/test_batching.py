"""Ragged records into the network's batches: padded (``Ragged.pad``) or one after another (``Ragged.tokens``)."""

import numpy as np
import pytest

from skobject2vec.data.batching import Ragged


def _reference(sequences, index, max_len, unknown_id):
    """The padded batch written out record by record."""
    rows = [[min(t, unknown_id) if unknown_id is not None else t for t in sequences[i][:max_len]] for i in index]
    width = max(len(r) for r in rows)
    return np.array([r + [0] * (width - len(r)) for r in rows]), np.array([len(r) for r in rows])


@pytest.mark.parametrize("shape", ["similar lengths", "long-tailed lengths"])
@pytest.mark.parametrize("max_len, unknown_id", [(10_000, None), (50, 90), (3, 40)])
def test_pad_gives_each_record_its_ids_then_zeros(shape, max_len, unknown_id):
    # Similar lengths fill the matrix (sentences); long-tailed ones (a user followed by the items the user
    # rated) leave it mostly padding, which pad fills from the tokens alone: both must give the same batch.
    rng = np.random.default_rng(0)
    lengths = rng.integers(8, 12, 60) if shape == "similar lengths" else np.where(rng.random(60) < 0.05, 400, 2)
    sequences = [rng.integers(0, 100, n).tolist() for n in lengths]
    ragged = Ragged.from_lists(sequences)
    index = rng.choice(60, 32, replace=False)
    ids, got_lengths = ragged.pad(index, max_len, unknown_id)
    expected_ids, expected_lengths = _reference(sequences, index, max_len, unknown_id)
    np.testing.assert_array_equal(ids.numpy(), expected_ids)
    np.testing.assert_array_equal(got_lengths.numpy(), expected_lengths)

    # the same records one after another, without padding (for encoders that pool each record's tokens alone)
    tokens, flat_lengths = ragged.tokens(index, max_len, unknown_id)
    valid = np.arange(expected_ids.shape[1])[None, :] < expected_lengths[:, None]
    np.testing.assert_array_equal(tokens.numpy(), expected_ids[valid])
    np.testing.assert_array_equal(flat_lengths.numpy(), expected_lengths)
