"""Callbacks of the epoch loop: defaults from the parameters, user callbacks, callbacks__NAME__PARAM."""

import numpy as np
import pytest
from safetensors.torch import load_file
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from support import FAST

from skobject2vec import Object2VecClassifier
from skobject2vec.callbacks import Callback, Checkpoint, EarlyStopping, LRScheduler
from skobject2vec.datasets import make_topic_pairs

# A learning rate so high that the validation loss soon stops improving: early stopping decides the epochs.
NOISY = dict(FAST, epochs=30, learning_rate=0.3, validation_fraction=0.25)


@pytest.fixture(scope="module")
def pairs():
    return make_topic_pairs(400, seed=7)


def test_patience_set_through_grid_search_changes_when_training_stops(pairs):
    X, y = pairs
    estimator = Object2VecClassifier(**NOISY, callbacks=[("early_stopping", EarlyStopping(patience=1))])
    assert estimator.get_params()["callbacks__early_stopping__patience"] == 1
    search = GridSearchCV(estimator, {"callbacks__early_stopping__patience": [1, 8]}, cv=2, refit=False,
                          return_train_score=False)
    search.fit(X, y)
    epochs = {}
    for patience in (1, 8):
        fitted = clone(estimator).set_params(callbacks__early_stopping__patience=patience).fit(X, y)
        epochs[patience] = fitted.n_epochs_
        best = fitted.best_epoch_
        assert fitted.n_epochs_ == min(best + patience, 30)  # stops `patience` epochs after the last improvement
    assert epochs[8] > epochs[1]
    assert estimator.callbacks[0][1].patience == 1  # the search and the fits changed clones only
    assert len(search.cv_results_["params"]) == 2


def test_unknown_callback_name_is_a_clear_error():
    with pytest.raises(ValueError, match="no callback named 'stopper'"):
        Object2VecClassifier().set_params(callbacks__stopper__patience=3)


def test_a_user_callback_sees_every_epoch_and_can_stop(pairs):
    class StopAfter(Callback):
        def __init__(self, epochs=2):
            self.epochs = epochs

        def on_epoch_end(self, loop, record):
            record["seen_by_callback"] = True
            loop.stop = record["epoch"] >= self.epochs

    clf = Object2VecClassifier(**dict(FAST, epochs=10), callbacks=[("stop", StopAfter(3))]).fit(*pairs)
    assert clf.n_epochs_ == 3 and all(r["seen_by_callback"] for r in clf.history_)
    clf.set_params(callbacks__stop__epochs=5).fit(*pairs)
    assert clf.n_epochs_ == 5


def test_default_early_stopping_can_be_turned_off(pairs):
    on = Object2VecClassifier(**dict(NOISY, early_stopping_patience=1)).fit(*pairs)
    off = Object2VecClassifier(**dict(NOISY, early_stopping_patience=1),
                               callbacks=[("early_stopping", None)]).fit(*pairs)
    assert on.n_epochs_ < 30 and off.n_epochs_ == 30
    assert not any("best" in r for r in off.history_)  # nothing restored: the last epoch's weights


def test_learning_rate_schedule(pairs):
    clf = Object2VecClassifier(**dict(FAST, epochs=4), callbacks=[LRScheduler(gamma=0.5)]).fit(*pairs)
    rates = [r["learning_rate"] for r in clf.history_]
    np.testing.assert_allclose(rates, [0.01, 0.005, 0.0025, 0.00125])
    with pytest.raises(ValueError, match="0 < gamma <= 1"):
        Object2VecClassifier(**dict(FAST, epochs=1), callbacks=[LRScheduler(gamma=2.0)]).fit(*pairs)


def test_checkpoint_holds_the_best_epoch_weights(pairs, tmp_path):
    path = tmp_path / "ckpt" / "best.safetensors"
    clf = Object2VecClassifier(**NOISY, callbacks=[("checkpoint", Checkpoint(path))]).fit(*pairs)
    state = load_file(str(path))
    # early stopping restored the best epoch, and the checkpoint is that epoch's weights
    for key, tensor in clf.net_.state_dict().items():
        np.testing.assert_array_equal(state[key].numpy(), tensor.numpy())
    assert sum(bool(r.get("checkpoint")) for r in clf.history_) >= 1


def test_callbacks_survive_clone_and_are_not_saved(pairs, tmp_path):
    import skobject2vec

    clf = Object2VecClassifier(**dict(FAST, epochs=2), callbacks=[("lr", LRScheduler(gamma=0.9))])
    copy = clone(clf)
    assert copy.callbacks[0][1] is not clf.callbacks[0][1] and copy.callbacks[0][1].gamma == 0.9
    clf.fit(*pairs).save(tmp_path / "m")
    assert skobject2vec.load(tmp_path / "m").callbacks is None
    with pytest.raises(TypeError, match="not a skobject2vec.callbacks.Callback"):
        Object2VecClassifier(**dict(FAST, epochs=1), callbacks=[("x", object())]).fit(*pairs)
