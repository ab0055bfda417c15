"""Progress reporting and fit history: what a user sees with and without verbose."""

import json
import logging

import numpy as np
import pytest
from support import FAST

from skobject2vec import Object2VecClassifier, Object2VecRegressor
from skobject2vec.datasets import make_score_pairs, make_topic_pairs

QUICK = dict(FAST, epochs=3)


@pytest.fixture(scope="module")
def pairs():
    return make_topic_pairs(300, seed=0)


def test_history_is_one_json_serialisable_dict_per_epoch(pairs):
    clf = Object2VecClassifier(**dict(QUICK, validation_fraction=0.2)).fit(*pairs)
    assert len(clf.history_) == clf.n_epochs_ == 3
    restored = json.loads(json.dumps(clf.history_))
    assert restored == clf.history_
    first = restored[0]
    assert first["epoch"] == 1
    assert {"train:cross_entropy", "validation:cross_entropy", "validation:accuracy", "seconds"} <= set(first)
    assert sum(record["best"] for record in restored) == 1


def test_regressor_history_uses_mean_squared_error(pairs):
    X, y = make_score_pairs(200, seed=0)
    reg = Object2VecRegressor(**QUICK).fit(X[50:], y[50:], X_val=X[:50], y_val=y[:50])
    best = next(r for r in reg.history_ if r["best"])
    # in the target's units: the mean squared error of predict on X_val, at the epoch whose weights are kept
    assert best["validation:mean_squared_error"] == pytest.approx(np.mean((reg.predict(X[:50]) - y[:50]) ** 2),
                                                                  rel=1e-4)
    assert json.loads(json.dumps(reg.history_)) == reg.history_


def test_silent_by_default(pairs, capsys, caplog):
    with caplog.at_level(logging.WARNING):
        Object2VecClassifier(**QUICK).fit(*pairs)
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    assert not [r for r in caplog.records if r.name.startswith("skobject2vec")]


def test_verbose_1_shows_a_progress_bar_per_epoch_with_loss_and_validation(pairs, capsys):
    Object2VecClassifier(**dict(QUICK, verbose=1, validation_fraction=0.2)).fit(*pairs)
    out, err = capsys.readouterr()
    for epoch in (1, 2, 3):
        assert f"epoch {epoch}/3" in err
    assert "loss=" in err and "val_accuracy=" in err and "val_cross_entropy=" in err
    assert out == ""


def test_verbose_2_prints_one_line_per_epoch(pairs, capsys):
    Object2VecClassifier(**QUICK, verbose=2).fit(*pairs)
    out, _ = capsys.readouterr()
    lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 3
    assert lines[0].startswith("epoch 1/3 train:cross_entropy=")


def test_per_epoch_messages_go_through_the_skobject2vec_logger(pairs, caplog):
    with caplog.at_level(logging.INFO, logger="skobject2vec"):
        Object2VecClassifier(**dict(QUICK, validation_fraction=0.2), early_stopping_patience=1,
                             early_stopping_tolerance=0.1).fit(*pairs)
    messages = [r.getMessage() for r in caplog.records if r.name == "skobject2vec"]
    assert messages[0].startswith("epoch 1/3 train:cross_entropy=")
    assert "validation:accuracy=" in messages[0]
