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
    clf = Object2VecClassifier(**NOISY, callbacks=[("checkpoint", Checkpoint(path)),
                                                   ("weight_averaging", None)]).fit(*pairs)
    state = load_file(str(path))
    # early stopping restored the best epoch (no average of epochs), and the checkpoint is that epoch's weights
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


def _averaged_run(weights, target=1.0, validate=True, restore_best=True, passes=None):
    """WeightAveraging over epochs whose single weight is ``weights[i]``, scored by ``(w - target)^2``
    (``passes``: a list that gets one item per validation pass after the epochs)."""
    import torch

    from skobject2vec.callbacks import WeightAveraging
    from skobject2vec.training import Loop

    net = torch.nn.Linear(1, 1, bias=False)
    ended = []

    def scores():
        if passes is not None and ended:
            passes.append(net.weight.item())
        return {"mean_squared_error": (net.weight.item() - target) ** 2}

    loop = Loop(net=net, optimizers=[], settings=None, metric="mean_squared_error",
                validate=scores if validate else None)
    # in the order of a fit's defaults
    callbacks = [EarlyStopping(patience=10, restore_best=restore_best), WeightAveraging()]
    for callback in callbacks:
        callback.on_train_begin(loop)
    for epoch, w in enumerate(weights, start=1):
        with torch.no_grad():
            net.weight.fill_(w)
        loop.history.append({"epoch": epoch, **({"validation:mean_squared_error": scores()["mean_squared_error"]}
                                                if validate else {})})
        for callback in callbacks:
            callback.on_epoch_end(loop, loop.history[-1])
    ended.append(True)
    for callback in callbacks:
        callback.on_train_end(loop)
    return net.weight.item(), loop.history[-1].get("weight_averaging")


def test_weight_averaging_keeps_the_average_only_where_the_validation_data_prefer_it():
    # around the optimum (1.0) after the best epoch (3: 0.8): the mean of epochs 1-7 (the best, the two before
    # it and all after it), 8.3 / 7, is closer than any epoch
    weight, record = _averaged_run([2.0, 1.5, 0.8, 1.3, 0.7, 1.25, 0.75])
    assert weight == pytest.approx(8.3 / 7) and record["kept"] and record["epochs"] == [1, 2, 3, 4, 5, 6, 7]
    assert record["validation:mean_squared_error"] == pytest.approx((8.3 / 7 - 1) ** 2)
    # the best epoch hit the optimum and the others sit on one side: the average is worse, the best epoch's
    # weights (restored by early stopping) stay
    weight, record = _averaged_run([2.0, 1.9, 1.0, 1.8, 1.9])
    assert weight == 1.0 and not record["kept"] and record["epochs"] == [1, 2, 3, 4, 5]
    # a later best starts the average again from the two epochs before it
    assert _averaged_run([3.0, 2.5, 2.0, 1.2, 0.9, 1.15])[1]["epochs"] == [3, 4, 5, 6]
    assert _averaged_run([2.0, 1.5, 0.8, 1.3], validate=False) == (np.float32(1.3), None)  # no validation data: nothing
    # without early stopping's restore the weights it would replace are the last epoch's (1.9, worse than the
    # average): judged by that epoch's recorded scores. Either way one validation pass scores the average alone
    passes = []
    weight, record = _averaged_run([2.0, 1.9, 1.0, 1.8, 1.9], restore_best=False, passes=passes)
    assert weight == pytest.approx(8.6 / 5) and record["kept"] and passes == [pytest.approx(8.6 / 5)]
    # a classifier's average is judged by accuracy first: more accurate with a higher cross-entropy wins
    from skobject2vec.callbacks import _rank

    assert (_rank({"accuracy": 0.65, "cross_entropy": 0.79}, "cross_entropy")
            < _rank({"accuracy": 0.63, "cross_entropy": 0.78}, "cross_entropy")
            < _rank({"accuracy": 0.63, "cross_entropy": 0.79}, "cross_entropy"))


def test_a_kept_average_is_the_fitted_model_and_can_be_turned_off(pairs, capsys):
    from sklearn.metrics import log_loss

    X, y = make_topic_pairs(400, seed=8)
    fit = dict(FAST, epochs=12, learning_rate=0.05)
    on = Object2VecClassifier(**fit, verbose=2).fit(*pairs, X_val=X, y_val=y)
    record = on.history_[-1]["weight_averaging"]
    printed = capsys.readouterr().out
    assert f"weights of epochs {record['epochs'][0]}-{record['epochs'][-1]} averaged" in printed
    assert ("; kept" if record["kept"] else "; not kept") in printed
    best = min(r["validation:cross_entropy"] for r in on.history_)
    # the fitted model's validation loss is the average's when it was kept, else the best epoch's
    expected = record["validation:cross_entropy"] if record["kept"] else best
    assert log_loss(y, on.predict_proba(X), labels=on.classes_) == pytest.approx(expected, rel=1e-4)
    off = Object2VecClassifier(**fit, callbacks=[("weight_averaging", None)]).fit(*pairs, X_val=X, y_val=y)
    assert not any("weight_averaging" in r for r in off.history_)
    assert log_loss(y, off.predict_proba(X), labels=off.classes_) == pytest.approx(best, rel=1e-4)
