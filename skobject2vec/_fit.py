"""The fit plan: what a fit will build and train, decided before anything is allocated.

Every fit path (in-memory ``fit``, streamed ``fit(path)``, torchrun, ``partial_fit``)
runs the same three steps:

1. **summary**: a :class:`DataSummary` of the training data (from ``PairData`` in
   memory, or from the streaming pre-pass) and the encoded targets
   (:func:`encode_targets` / :func:`targets_from_counts`: pure functions that return
   the encoded labels and their state, :class:`ClassTargets` or :class:`ScoreTargets`);
2. **plan**: :func:`make_plan` turns the validated parameters and the summary into
   a frozen :class:`FitPlan` (per-side :class:`SideSettings`, vocabulary sizes, max
   lengths, network config, train settings, seed, dtype); :func:`candidate_plans`
   adds the recipes an in-memory fit compares, :func:`continuation_plan` is
   ``partial_fit``'s plan for a fitted network;
3. **run**: :func:`run`, the one runner, builds (:func:`build_network`, with the
   fit's :class:`FitRng`) or continues the network and runs the epoch loop of :mod:`.training`
   over a source (:class:`InMemorySource`, or the streamed source of
   :mod:`.parallel.torchrun`, one rank's share). The result is a :class:`FitResult`;
   the estimator sets its fitted attributes from it once, at the end
   (:func:`apply_result`), so a fit that fails leaves the previous fitted state
   untouched (:func:`fitted_state_restored_on_error`).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets

from . import training
from ._auto import (
    INHERITED_SETTINGS,
    RECIPE_AFTER_SLOW,
    RECIPE_AFTER_STARVED,
    RECIPE_SETTINGS,
    SLOW_BEST_EPOCH,
    DataShape,
    auto_recipes,
    auto_sparse_tables,
    id_with_context,
    resolve_auto,
)
from ._validation import FitData, check_pairs, check_sample_weight, check_vocab, finish_pairs
from .callbacks import Callback, resolve_callbacks
from .data.batching import Batcher
from .data.negatives import sample_negatives
from .data.records import is_integer
from .devices import resolve_device
from .fitted import (
    MAX_SEQ_LEN,
    ClassTargets,
    FitResult,
    ScoreTargets,
    apply_result,
    fitted_state_restored_on_error,
)
from .hyperparameters import BY_NAME, validate_value
from .nn.encoders import resolve_layers
from .nn.model import NetworkConfig, Object2VecNet
from .text.pretrained import PretrainedInfo, apply_pretrained_settings, load_pretrained_table
from .threads import resolve_threads

if TYPE_CHECKING:
    import numpy.typing as npt

    from .data.batching import PairData

__all__ = ["SideSettings", "DataSummary", "ClassTargets", "ScoreTargets", "FitPlan", "FitResult", "encode_targets",
           "targets_from_counts", "make_plan", "build_network", "FitRng", "Training", "epoch_data_factory",
           "apply_result", "fitted_state_restored_on_error", "reusable_net", "continued_history", "MAX_SEQ_LEN"]


# ----------------------------------------------------------------- per side
@dataclass(frozen=True)
class SideSettings:
    """One encoder's settings after enc1 inherits from enc0 and pretrained files fix dims."""

    network: str
    layers: int
    cnn_filter_width: int
    token_embedding_dim: int
    max_seq_len: int | None
    vocab_size: int | None
    pretrained_embedding_file: str | None
    vocab_file: str | None
    freeze_pretrained_embedding: bool
    pretrained: PretrainedInfo | None
    token_dim_from_file: bool


def encoder_settings(p: dict[str, Any]) -> tuple[SideSettings, SideSettings]:
    """Per-side settings, enc1 inheriting enc0's configuration when enc1_network == 'enc0'."""
    if p["shared_encoder"] and p["enc1_network"] not in ("enc0", p["enc0_network"]):
        raise ValueError(f"shared_encoder=True makes enc1 the very encoder of enc0, but enc1_network="
                         f"{p['enc1_network']!r} differs from enc0_network={p['enc0_network']!r}; set "
                         f"enc1_network='enc0' or shared_encoder=False.")
    sides = [{k: p[f"enc{i}_{k}"] for k in INHERITED_SETTINGS + (
        "pretrained_embedding_file", "vocab_file", "freeze_pretrained_embedding")} for i in (0, 1)]
    if p["enc1_network"] == "enc0" or p["shared_encoder"]:
        ignored = [f"enc1_{k}" for k in INHERITED_SETTINGS[1:] if p[f"enc1_{k}"] != BY_NAME[f"enc1_{k}"].default]
        if ignored:
            warnings.warn(f"{', '.join(ignored)} ignored: enc1_network='enc0' copies enc0's configuration "
                          f"(as SageMaker does). Set enc1_network explicitly to configure enc1.", UserWarning)
        for k in INHERITED_SETTINGS:
            sides[1][k] = sides[0][k]
    # A pretrained file fixes its side's token dim (both sides' when tied).
    apply_pretrained_settings(sides, tied=p["tied_token_embedding_weight"],
                              default_token_dim=BY_NAME["enc0_token_embedding_dim"].default)
    for s in sides:
        s["layers"] = resolve_layers(s["network"], s["layers"])
        if s["network"] == "pooled_embedding" and not s["token_dim_from_file"]:
            s["token_embedding_dim"] = p["enc_dim"]  # SageMaker forces this
    return cast("tuple[SideSettings, SideSettings]", tuple(SideSettings(**s) for s in sides))


# ----------------------------------------------------------------- data
@dataclass(frozen=True)
class DataSummary:
    """What the plan needs to know about the training data, in memory or streamed."""

    n_records: int
    max_lens: tuple[int, int]
    #: Largest id per side among the training records (those with positive weight).
    max_ids: tuple[int, int]
    #: Where each side's largest id sits ("record 17", "file.jsonl:3"), for error messages.
    max_id_where: tuple[str, str] = ("", "")
    streamed: bool = False
    #: Shortest sequence per side (None: not known).
    min_lens: tuple[int, int] | None = None
    #: Which sides hold an id followed by context tokens (:func:`~._auto.id_with_context`).
    id_contexts: tuple[bool, bool] = (False, False)
    #: Mean tokens per record on each side (None: not known), for the rows a step looks up.
    mean_lens: tuple[float, float] | None = None

    @property
    def shape(self) -> DataShape:
        return DataShape(self.n_records, self.max_lens, streamed=self.streamed,
                         vocab_size=max(self.max_ids) + 1, min_lens=self.min_lens, id_contexts=self.id_contexts)


def summarize_pairs(pairs: PairData, weight: np.ndarray) -> DataSummary:
    """:class:`DataSummary` of in-memory :class:`~.data.batching.PairData`."""
    assert pairs.in0 is not None and pairs.in1 is not None  # training pairs: both sides
    used = np.flatnonzero(weight > 0)
    max_ids: list[int]
    where: list[str]
    max_ids, where = [], []
    for ragged in (pairs.in0, pairs.in1):
        taken = ragged.take(used)
        max_ids.append(taken.max_id())
        token = int(np.argmax(taken.values)) if taken.values.size else None
        # the record (in the caller's numbering) that holds the largest id of the training records
        where.append("" if token is None else
                     f"record {int(used[np.searchsorted(taken.offsets, token, side='right') - 1])}")
    return DataSummary(len(pairs), (int(pairs.in0.lengths.max()), int(pairs.in1.lengths.max())),
                       cast("tuple[int, int]", tuple(max_ids)), cast("tuple[str, str]", tuple(where)),
                       min_lens=shortest_lengths(pairs), id_contexts=id_contexts(pairs),
                       mean_lens=(float(pairs.in0.lengths.mean()), float(pairs.in1.lengths.mean())))


def id_contexts(pairs: PairData) -> tuple[bool, bool]:
    """Which sides of in-memory pairs hold an id followed by context tokens."""
    assert pairs.in0 is not None and pairs.in1 is not None  # training pairs: both sides
    return id_with_context(pairs.in0.values, pairs.in0.offsets), id_with_context(pairs.in1.values, pairs.in1.offsets)


def shortest_lengths(pairs: PairData) -> tuple[int, int]:
    """Shortest sequence of each side of in-memory pairs."""
    assert pairs.in0 is not None and pairs.in1 is not None  # training pairs: both sides
    return int(pairs.in0.lengths.min()), int(pairs.in1.lengths.min())


# ----------------------------------------------------------------- targets
def _check_two_classes(targets: ClassTargets, encoded: np.ndarray, weight: np.ndarray,
                       negative_sampling_rate: int) -> None:
    present = np.unique(encoded[weight > 0])
    if len(present) < 2 and not (negative_sampling_rate > 0 and len(targets.classes) >= 2):
        raise ValueError(
            f"Classifier can't train when only one class is present: y holds only {targets.classes[present]!r}"
            " (among records with positive sample_weight). Pass at least two classes, or all-positive data "
            "with negative_sampling_rate > 0.")


def encode_targets(task: str, y: npt.ArrayLike, weight: np.ndarray,
                   p: dict[str, Any]) -> tuple[ClassTargets | ScoreTargets, np.ndarray]:
    """``(targets, encoded)``: the target state and ``y`` encoded for training (class
    indices, or standardised scores). ``y`` is not modified."""
    if task == "regression":
        y = np.asarray(y, dtype=np.float64)
        # Weighted standardisation, so zero-weight records do not move the scale.
        mean = float(np.average(y, weights=weight))
        scale = float(np.sqrt(np.average((y - mean) ** 2, weights=weight)))
        targets: ClassTargets | ScoreTargets = ScoreTargets(mean, scale if scale > 0 else 1.0)
        return targets, targets.transform(y)
    check_classification_targets(y)
    y = np.asarray(y)
    if p["num_classes"] is not None:
        k = p["num_classes"]
        ok = np.array([is_integer(v) for v in y.ravel()])
        values = y.astype(np.int64) if ok.all() else None
        if values is None or (values < 0).any() or (values >= k).any():
            bad = int(np.flatnonzero(~ok)[0]) if not ok.all() else int(
                np.flatnonzero((values < 0) | (values >= k))[0])  # type: ignore[operator]  # set when ok.all()
            raise ValueError(f"y[{bad}] = {y.ravel()[bad]!r}: with num_classes={k}, labels must be the "
                             f"integers 0..{k - 1}.")
        targets, encoded = ClassTargets(np.arange(k)), values
    else:
        classes = np.unique(y)
        if p["negative_sampling_rate"] > 0:
            if classes.dtype.kind not in "iub":
                raise ValueError("negative_sampling_rate > 0 labels sampled negatives 0, so y must hold integer "
                                 f"labels (SageMaker's convention); got labels of type {classes.dtype}.")
            classes = np.union1d(classes, [0]).astype(classes.dtype)
        targets = ClassTargets(classes)
        encoded = np.searchsorted(classes, y).astype(np.int64)
    _check_two_classes(targets, encoded, weight, p["negative_sampling_rate"])
    return targets, encoded


def targets_from_counts(task: str, p: dict[str, Any], *, label_counts: Mapping[int, int] | None = None, n: int = 0,
                        label_sum: float = 0.0, label_sum_sq: float = 0.0) -> ClassTargets | ScoreTargets:
    """The target state from a streaming pre-pass: class counts, or the labels' sum and sum of squares."""
    if task == "classification":
        assert label_counts is not None  # a classification pre-pass counts its labels
        labels = np.array(sorted(label_counts), dtype=np.int64)
        targets, _ = encode_targets(task, labels, np.ones(len(labels)), p)
        return targets
    mean = label_sum / n
    variance = max(label_sum_sq / n - mean ** 2, 0.0)
    return ScoreTargets(mean, float(np.sqrt(variance)) or 1.0)


# ----------------------------------------------------------------- the plan
@dataclass(frozen=True)
class FitPlan:
    """Everything a fit builds and trains, fixed before training starts."""

    task: str
    params: dict[str, Any]  #: validated parameters with every "auto" resolved
    sides: tuple[SideSettings, ...]  #: one per side; () for a continued network (continuation_plan)
    vocab_sizes: tuple[int, int]
    max_lens: tuple[int, int]
    config: NetworkConfig  #: :class:`~.nn.model.Object2VecNet` configuration
    settings: training.TrainSettings
    targets: ClassTargets | ScoreTargets
    seed: int
    dtype: torch.dtype = field(default=torch.float32)


def _resolve_vocab(summary: DataSummary, sides: Sequence[SideSettings], tied: bool, name: str) -> tuple[int, int]:
    """Vocabulary sizes: given ones as given (checked against the data by the caller),
    missing ones max id + 1 of the training records and of the side's pretrained
    vocabulary, so that words met only at predict time keep their pretrained vectors
    instead of the unknown-token row."""
    sizes = []
    for i, s in enumerate(sides):
        if s.vocab_size is not None:
            sizes.append(s.vocab_size)
            continue
        from_data = summary.max_ids[i] + 1
        inferred = max(from_data, 2, s.pretrained.max_id + 1 if s.pretrained is not None else 0)
        limit = cast(float, BY_NAME[f"enc{i}_vocab_size"].high)  # the table bounds vocabulary sizes
        if inferred > limit:  # checked before a table of that many rows is allocated
            where = f"field 'in{i}'"
            if from_data == inferred and summary.max_id_where[i]:  # the id is in the data, not only a vocab file
                where = f"{summary.max_id_where[i]}, " + where
            raise ValueError(
                f"{name}: {where} holds token id {inferred - 1}, which would need a vocabulary of "
                f"{inferred:,} rows, above SageMaker's limit of {int(limit):,}. Re-number the ids densely "
                f"from 0 (e.g. with sklearn.preprocessing.OrdinalEncoder or TextPairTokenizer).")
        sizes.append(inferred)
    if tied:
        given = [s.vocab_size for s in sides]
        if None not in given and given[0] != given[1]:
            raise ValueError(f"tied_token_embedding_weight=True needs one vocabulary, but enc0_vocab_size="
                             f"{given[0]} and enc1_vocab_size={given[1]} differ.")
        if sides[0].token_embedding_dim != sides[1].token_embedding_dim:
            raise ValueError(
                f"tied_token_embedding_weight=True needs one token table, but the token embedding dims "
                f"differ: enc0 {sides[0].token_embedding_dim} vs enc1 {sides[1].token_embedding_dim}.")
        sizes = [max(sizes)] * 2
    return cast("tuple[int, int]", tuple(int(s) for s in sizes))


def network_config(p: dict[str, Any], sides: Sequence[SideSettings], vocab: Iterable[int],
                   n_outputs: int, sparse_tables: Sequence[bool] = (True, True)) -> NetworkConfig:
    """The network's configuration; with sparse storage, only the tables ``sparse_tables`` names (one
    per side) are sparse (what "auto" storage decides: :func:`~._auto.auto_sparse_tables`)."""
    sparse = p["token_embedding_storage_type"] == "row_sparse"
    tables = [sparse and bool(chosen) for chosen in sparse_tables]
    return {
        "vocab_sizes": list(vocab),
        "token_dims": [int(s.token_embedding_dim) for s in sides],
        "networks": [s.network for s in sides],
        "layers": [int(s.layers) for s in sides],
        "filter_widths": [int(s.cnn_filter_width) for s in sides],
        "enc_dim": p["enc_dim"],
        "comparator": list(p["comparator_list"]),
        "mlp_layers": p["mlp_layers"],
        "mlp_dim": p["mlp_dim"],
        "mlp_activation": p["mlp_activation"],
        "dropout": p["dropout"],
        "n_outputs": int(n_outputs),
        "tied": p["tied_token_embedding_weight"],
        "shared": p["shared_encoder"],
        "sparse": any(tables),
        "pooling": p["pooling"],
        "sparse_tables": tables,
    }


def train_settings(task: str, p: dict[str, Any], targets: ClassTargets | ScoreTargets) -> training.TrainSettings:
    return training.TrainSettings(
        task=task, epochs=p["epochs"], batch_size=p["mini_batch_size"], optimizer=p["optimizer"],
        learning_rate=p["learning_rate"], weight_decay=p["weight_decay"],
        patience=p["early_stopping_patience"], tolerance=p["early_stopping_tolerance"],
        bucket_width=p["bucket_width"], verbose=p["verbose"], embedding_l2=p["embedding_l2"],
        learning_rate_decay=p["learning_rate_decay"],
        target_scale=getattr(targets, "scale", 1.0),
        n_threads=resolve_threads(p["n_threads"], (p["enc0_network"], p["enc1_network"])),
    )


def make_seed(random_state: Any) -> int:
    """The one integer seed a fit derives every random stream from."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def make_plan(task: str, p: dict[str, Any], summary: DataSummary, targets: ClassTargets | ScoreTargets, *,
              random_state: Any, name: str) -> FitPlan:
    """The frozen plan of a fit; raises ValueError for settings the data cannot train."""
    auto_storage = p["token_embedding_storage_type"] == "auto"
    p = resolve_auto(p, replace(summary.shape, task=task))
    if task == "regression" and p["negative_sampling_rate"] > 0:
        raise ValueError("negative_sampling_rate applies to classification (output_layer='softmax') only; "
                         "a regressor cannot label sampled negatives. Set negative_sampling_rate=0.")
    sides = encoder_settings(p)
    vocab = _resolve_vocab(summary, sides, p["tied_token_embedding_weight"], name)
    max_lens = cast("tuple[int, int]", tuple(
        int(s.max_seq_len) if s.max_seq_len is not None else int(min(max(length, 1), MAX_SEQ_LEN))
        for s, length in zip(sides, summary.max_lens)))
    # "auto" storage decides per table: sparse rows for a large table a step reads little of, else a dense step
    tables = auto_sparse_tables([size + 1 for size in vocab], _lookups_per_step(p, summary, max_lens)) \
        if auto_storage else [True, True]
    return FitPlan(task=task, params=p, sides=sides, vocab_sizes=vocab, max_lens=max_lens,
                   config=network_config(p, sides, vocab, targets.n_outputs, tables),
                   settings=train_settings(task, p, targets), targets=targets, seed=make_seed(random_state),
                   dtype=torch.float64 if p["dtype"] == "float64" else torch.float32)


def _lookups_per_step(p: dict[str, Any], summary: DataSummary, max_lens: tuple[int, int]) -> list[float] | None:
    """The tokens one training step looks up in each side's table (both sides' in a tied table), on
    average; None where the records' lengths are not known."""
    if summary.mean_lens is None:
        return None
    per_side = [p["mini_batch_size"] * min(mean, limit) for mean, limit in zip(summary.mean_lens, max_lens)]
    if p["tied_token_embedding_weight"]:  # resolve_auto ties the tables of a shared encoder
        return [sum(per_side)] * 2
    return per_side


def candidate_plans(task: str, p: dict[str, Any], summary: DataSummary, targets: ClassTargets | ScoreTargets, *,
                    random_state: Any, name: str, external_validation: bool = False,
                    compare: bool = True) -> dict[str, FitPlan]:
    """``{recipe name: FitPlan}``: the plans an in-memory fit trains and compares on its validation
    split (:data:`~._auto.AUTO_RECIPES`), or ``{"": plan}``: one plan, without a validation split, where
    no recipes apply, or without ``compare`` (a warm start continues one network). Every plan has the
    same seed and validation split."""
    recipes = auto_recipes(p, replace(summary.shape, task=task))
    if len(recipes) == 1:  # one plan: the overrides of the recipe the given settings chose (or none)
        (overrides,) = recipes.values()
        return {"": make_plan(task, dict(p, **overrides), summary, targets, random_state=random_state, name=name)}
    base = make_plan(task, p, summary, targets, random_state=random_state, name=name)
    if not compare or not (external_validation or base.params["validation_fraction"]):
        # Nothing to compare on: the family's own rules where they are one of the recipes (the defaults' Adagrad
        # on ratings, Adam on sequences), else the first (an explicit rate's dense Adam, beside its lazy one)
        if all(recipes.values()):
            return {"": make_plan(task, dict(p, **next(iter(recipes.values()))), summary, targets,
                                  random_state=random_state, name=name)}
        return {"": base}
    return {recipe: make_plan(task, dict(p, **overrides), summary, targets, random_state=random_state, name=name)
            for recipe, overrides in recipes.items()}


class RecipeRace(Callback):
    """Stops a compared recipe once it cannot catch up with the best recipe trained before it, or,
    under a decaying learning rate, cannot improve its own best by ``tolerance`` any more.

    After each epoch past the first ``window``, the recipe's best validation loss is projected
    to its last epoch: at the rate its best improved over the last ``window`` epochs, per unit of
    learning rate, kept up to the end under the recipe's schedule (``decay``, the learning rate's
    factor per epoch: with 0.8 the epochs left hold as much learning rate as about the last four;
    with a constant rate, as many epochs as are left), or, once two windows are known and the last
    improved less than the one before, with the improvement shrinking by that ratio each window
    (a geometric tail; whichever projects less gain). When even that projection stays above
    ``bar``, the earlier recipe's best loss, the recipe cannot be the one kept and training it
    further is wasted. With windows of epochs, not single ones, a bumpy Adam curve is not
    stopped on one bad epoch.

    Under a decaying rate the same projection ends a recipe that has converged: when it gains
    less than ``tolerance`` (``early_stopping_tolerance``) over the epochs left, waiting
    ``early_stopping_patience`` epochs for an improvement the schedule cannot give is wasted. On
    MovieLens the Adagrad recipe, whose rate shrinks 0.8 times per epoch, gained 0.0005 in its
    last 5 of 21 epochs; Adam, past its best epoch, stops after one window instead of the
    patience's 5 epochs. At a constant rate the fit's own early stopping ends it, as without a
    comparison: such a curve is bumpy and still gains after a window without gain, and its later
    epochs are what weight averaging averages (mf-history, the fast Adam at a constant 0.01, seeds
    0 / 1 / 2: ended by one window without gain, test R^2 0.809 / 0.818 / 0.824; to its patience,
    0.824 / 0.823 / 0.826).
    """

    window = 3

    def __init__(self, bar: float, epochs: int, decay: float = 1.0, tolerance: float = 0.0) -> None:
        self.bar, self.epochs, self.decay, self.tolerance = bar, epochs, decay, tolerance
        self.stopped_at: int | None = None
        #: Why it stopped: "bar" (it could not reach the best before it), "converged" (nor its own best, even
        #: with every later epoch) or "last epochs" (too few epochs left to gain in: not a convergence)
        self.stopped_by: str | None = None

    def _rate_sum(self, first: int, last: int | None) -> float:
        """The learning rate of epochs ``first``..``last`` (from 1; None: every later epoch, under a decaying
        rate), summed, in units of the first epoch's."""
        if last is None:
            return self.decay ** (first - 1) / (1 - self.decay)
        return sum(self.decay ** (epoch - 1) for epoch in range(first, last + 1))

    def projected_best(self, losses: list[float], unbounded: bool = False) -> float:
        """The lowest loss the curve ``losses`` (one per epoch so far) could reach by the last epoch (with
        ``unbounded``, under a decaying rate, by any later epoch: what the schedule alone allows)."""
        w, t = self.window, len(losses)
        best = min(losses)
        recent = min(losses[:t - w]) - best  # the best's improvement over the last window
        # kept up per unit of learning rate: learning curves flatten (and Adagrad's own steps shrink), so an
        # overestimate; with a constant rate, recent * (epochs - t) / w
        gain = recent * self._rate_sum(t + 1, None if unbounded else self.epochs) / self._rate_sum(t - w + 1, t)
        if t > 2 * w:
            before = min(losses[:t - 2 * w]) - min(losses[:t - w])  # over the window before
            if before > 0 and recent < before:
                ratio = recent / before
                gain = min(gain, recent * ratio / (1 - ratio))  # every later window gains `ratio` times less
        return max(best - gain, 0.0)  # a loss (squared error, cross-entropy) is never below 0

    def on_epoch_end(self, loop: training.Loop, record: dict[str, Any]) -> None:
        losses = validation_losses(loop.history)
        if len(losses) <= self.window:
            return
        projected = self.projected_best(losses)
        # Its own convergence only under a decaying rate (see the class's docstring)
        converged = self.decay < 1 and projected > min(losses) - self.tolerance
        if projected > self.bar or converged:
            loop.stop = True
            self.stopped_at = int(record["epoch"])
            # Near the last epoch allowed, few epochs are left to gain in, so the projection says "converged"
            # of a curve that the epochs left, not its schedule, end: it is converged only where it could not
            # gain the tolerance even with every later epoch. MovieLens' Adagrad: converged either way (its
            # gains shrink geometrically); clean planted ratings over 1,000 x 1,000 ids: 0.0009 to gain by its
            # 30th epoch, 0.003 with no cap: a starved schedule, which RECIPE_AFTER_STARVED's follower may beat.
            if projected > self.bar:
                self.stopped_by = "bar"
            elif (record["epoch"] >= self.epochs
                  or self.projected_best(losses, unbounded=True) < min(losses) - self.tolerance):
                self.stopped_by = "last epochs"
            else:
                self.stopped_by = "converged"


#: The history keys of the validation loss (a regressor's, a classifier's).
_LOSS_KEYS = ("validation:mean_squared_error", "validation:cross_entropy")


def validation_losses(history: list[dict[str, Any]]) -> list[float]:
    """The validation loss of each epoch of a fit's ``history`` that has one."""
    return [value for record in history for key, value in record.items() if key in _LOSS_KEYS]


def validation_loss(history: list[dict[str, Any]]) -> float:
    """The validation loss of the model a fit of ``history`` ends with (inf without one): the weight
    average's where :class:`~skobject2vec.callbacks.WeightAveraging` kept it, else the best epoch's.

    Recipes compare what each would give the user. At a constant rate Adam's curve is bumpy and
    its average beats its best epoch by far (planted ratings with a history, seed 0: 1.09 against
    1.32), while a decaying rate's average gains little: compared by best epochs, the recipe whose
    model is better could lose.
    """
    averaged = history[-1].get("weight_averaging", {}) if history else {}
    if averaged.get("kept"):
        return float(min(value for key, value in averaged.items() if key in _LOSS_KEYS))
    return min(validation_losses(history), default=float("inf"))


def recipe_record(plans: dict[str, FitPlan], histories: dict[str, list[dict[str, Any]]],
                  losses: dict[str, float], chosen: str) -> dict[str, Any] | None:
    """``auto_recipe_``: the recipe kept, each recipe's validation loss (``losses``) and epochs
    trained, and the settings the kept recipe fixed (None when one plan was trained)."""
    if len(plans) == 1:
        return None
    return {"chosen": chosen, "validation_loss": dict(losses),
            "epochs": {name: len(history) for name, history in histories.items()},
            "settings": {key: _plain(plans[chosen].params[key]) for key in RECIPE_SETTINGS}}


def _plain(value: Any) -> Any:
    """A setting as JSON keeps it (the artifact stores ``auto_recipe_``): a comparator tuple as its string."""
    return ", ".join(value) if isinstance(value, tuple) else value


# ----------------------------------------------------------------- build
class FitRng:
    """Torch's global RNG for one fit: seeded once, carried over the fit's pauses (:class:`Training`), and
    the caller's own stream restored around each stretch of the fit."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.seed, self.device = seed, device
        self._state: tuple[torch.Tensor, torch.Tensor | None] | None = None

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        cuda = self.device.type == "cuda"
        with torch.random.fork_rng(devices=[self.device.index or 0] if cuda else []):
            if self._state is None:
                _seed(self.seed, cuda)
            else:
                torch.set_rng_state(self._state[0])
                if cuda:
                    torch.cuda.set_rng_state(cast(torch.Tensor, self._state[1]), self.device)
            try:
                yield
            finally:
                self._state = (torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if cuda else None)


def _seed(seed: int, cuda: bool) -> None:
    """``torch.manual_seed(seed)``, off CUDA the CPU generator's alone (the same stream): torch's own also formats
    the stack for a deferred seeding of each accelerator not yet initialised (CUDA, XPU, MTIA): 1.2 ms of
    cProfile's 11 ms per 200-record fit."""
    if cuda:
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


def _memory_available(device: torch.device) -> int | None:
    """Bytes the device has in all (None: unknown)."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.mem_get_info(device)[1])
        if device.type == "cpu":
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, RuntimeError, AttributeError):
        pass
    return None


def check_table_memory(plan: FitPlan, device: torch.device) -> None:
    """Refuse, before anything is allocated, token tables that cannot fit in the device's memory.

    A table costs ``(vocab_size + 1) x token_dim`` numbers, and training holds at least
    as much again of gradients and optimizer state (Adam: three times as much); an
    in-range setting such as enc_dim=10000 over 3,000,000 ids asks for 120 GB per table.
    """
    c = plan.config
    itemsize = torch.empty(0, dtype=plan.dtype).element_size()
    tables = 1 if c["tied"] or c.get("shared") else 2
    numbers = sum((c["vocab_sizes"][i] + 1) * c["token_dims"][i] for i in range(tables))
    state = 4 if plan.params["optimizer"] == "adam" else 2  # weights + gradients (+ moments)
    need = numbers * itemsize * state
    available = _memory_available(device)
    if available is not None and need > available:
        raise ValueError(
            f"The token tables need about {need / 2 ** 30:,.1f} GiB to train ({tables} table(s) of "
            + " and ".join(f"{c['vocab_sizes'][i] + 1:,} rows x {c['token_dims'][i]:,}" for i in range(tables))
            + f" {str(plan.dtype).replace('torch.', '')}, with gradients and {plan.params['optimizer']} state), "
            f"more than the {available / 2 ** 30:,.1f} GiB of this {device.type} device. Lower enc_dim / "
            f"enc*_token_embedding_dim, or enc*_vocab_size (re-number the ids densely), or tie the tables.")


def build_network(plan: FitPlan, device: torch.device) -> Object2VecNet:
    """A new network for the plan, pretrained rows loaded (and frozen), on ``device``; call with the fit's
    :class:`FitRng` active."""
    check_table_memory(plan, device)
    net = Object2VecNet(plan.config)
    for i, s in enumerate(plan.sides):
        if s.pretrained_embedding_file is not None:
            load_pretrained_table(net.token_table(i), s.pretrained_embedding_file, s.vocab_file,
                                  freeze=s.freeze_pretrained_embedding, side=f"enc{i}")
    return net.to(device=device, dtype=plan.dtype)


def epoch_data_factory(train_index: np.ndarray, targets: np.ndarray, weight: np.ndarray, negative_sampling_rate: int,
                       negative_index: int | None) -> Callable[[int, np.random.Generator], training.EpochData]:
    """``epoch_data(epoch, rng) -> EpochData``: the training records, plus fresh sampled negatives per epoch."""
    base = training.EpochData(train_index, train_index, targets[train_index], weight[train_index])
    if negative_sampling_rate == 0:
        return lambda epoch, rng: base
    # Positions within train_index: negatives pair training records only, so a
    # held-out (validation_fraction) record's in1 never enters training.
    positives = np.flatnonzero(targets[train_index] != negative_index)

    def with_negatives(epoch: int, rng: np.random.Generator) -> training.EpochData:
        left, right = sample_negatives(positives, len(train_index), negative_sampling_rate, rng)
        left, right = train_index[left], train_index[right]
        return training.EpochData(
            np.concatenate([base.left, left]), np.concatenate([base.right, right]),
            np.concatenate([base.target, np.full(len(left), negative_index, dtype=base.target.dtype)]),
            np.concatenate([base.weight, weight[left]]),
        )

    return with_negatives


# ----------------------------------------------------------------- run
@dataclass(frozen=True)
class InMemorySource:
    """Training data held in memory: the pairs, each epoch's records (``epoch_data(epoch, rng)``,
    where negative sampling draws), and held-out ``(PairData, EpochData)`` for early stopping."""

    pairs: PairData
    epoch_data: Callable[[int, np.random.Generator], training.EpochData]
    validation: tuple[PairData, training.EpochData] | None = None

    def epoch_batches(self, batcher: Batcher, settings: training.TrainSettings, rng: np.random.Generator,
                      dtype: torch.dtype) -> Callable[[int], Iterable[training.Batch]]:
        """``epoch -> batches`` for :class:`training.EpochRun`."""
        def batches(epoch: int) -> Iterable[training.Batch]:
            return training.training_batches(self.pairs, self.epoch_data(epoch, rng), batcher, settings, rng=rng,
                                             dtype=dtype)
        return batches

    def validator(self, net: Object2VecNet, batcher: Batcher, settings: training.TrainSettings,
                  dtype: torch.dtype) -> Callable[[], dict[str, float]] | None:
        """``() -> validation scores``, or None without held-out records."""
        if self.validation is None:
            return None
        # (not None: checked above; mypy does not carry the narrowing into the lambda)
        return lambda: training.evaluate(net, *cast("tuple[PairData, training.EpochData]", self.validation),
                                         batcher, settings, dtype)


if TYPE_CHECKING:
    class FitSource(Protocol):
        """What :func:`run` trains on: :class:`InMemorySource`, or torchrun's streamed source."""

        def epoch_batches(self, batcher: Batcher, settings: training.TrainSettings,
                          rng: np.random.Generator, dtype: torch.dtype) -> Callable[[int], Iterable[training.Batch]]:
            ...

        def validator(self, net: Object2VecNet, batcher: Batcher, settings: training.TrainSettings,
                      dtype: torch.dtype) -> Callable[[], dict[str, float]] | None:
            ...

    class Ranks(Protocol):
        """A data-parallel job's place (torchrun's ``_Ranks``, not imported: that would be an import cycle)."""

        rank: int

        def wrap(self, net: torch.nn.Module) -> torch.nn.Module:
            ...

        def reduce(self, values: Any, op: str = "sum") -> np.ndarray:
            ...


def run(plan: FitPlan, source: FitSource, *, device: torch.device, net: Object2VecNet | None = None,
        lens: tuple[tuple[int, int], tuple[int, int]] | None = None, callbacks: Sequence[Callback] | None = None,
        ranks: Ranks | None = None) -> tuple[Object2VecNet, list[dict[str, Any]]]:
    """Train ``plan`` on ``source``: the one runner of in-memory fits, ``partial_fit`` and torchrun.

    Parameters
    ----------
    plan : FitPlan
        What to build and how to train (``plan.settings``; its ``seed`` seeds every stream).
    source : InMemorySource or a streamed source
        ``epoch_batches(batcher, settings, rng, dtype)`` and ``validator(net, batcher, settings, dtype)``.
    net : Object2VecNet or None
        The network to continue (a warm start, ``partial_fit``); None builds ``plan``'s.
    lens : (vocab sizes, max lengths) or None
        The batcher's, when they are not ``plan``'s (a continued network keeps its own).
    ranks : object or None
        A data-parallel job's place (``rank``, ``reduce``, ``wrap(net)``): each rank draws its own
        batches and dropout masks from the shared seed; None: one process.

    Returns
    -------
    (net, history)
    """
    steps = Training(plan, source, device=device, net=net, lens=lens, callbacks=callbacks, ranks=ranks)
    steps.go_on()
    return steps.net, steps.finish()


class Training:
    """:func:`run` in steps: :meth:`go_on` trains, up to a pause where asked; :meth:`finish` ends the fit
    and returns its history. A fit that compares recipes pauses one and may go on with it later
    (:func:`fit_in_memory`). Arguments: :func:`run`'s."""

    def __init__(self, plan: FitPlan, source: FitSource, *, device: torch.device, net: Object2VecNet | None = None,
                 lens: tuple[tuple[int, int], tuple[int, int]] | None = None,
                 callbacks: Sequence[Callback] | None = None, ranks: Ranks | None = None) -> None:
        vocab, max_lens = lens if lens is not None else (plan.vocab_sizes, plan.max_lens)
        batcher = Batcher(max_lens, vocab, device)
        rng = np.random.default_rng(plan.seed if ranks is None else [plan.seed, ranks.rank])
        self.rng = FitRng(plan.seed, device)
        with self.rng.active():  # the same initial weights on every rank
            self.net = build_network(plan, device) if net is None else net.to(device=device, dtype=plan.dtype)
            model: torch.nn.Module = self.net
            if ranks is not None:
                _seed(plan.seed + ranks.rank, device.type == "cuda")  # but each rank its own dropout masks
                model = ranks.wrap(self.net)
            self.epochs = training.EpochRun(
                model, source.epoch_batches(batcher, plan.settings, rng, plan.dtype), plan.settings, dtype=plan.dtype,
                sparse=plan.config["sparse"], validate=source.validator(self.net, batcher, plan.settings, plan.dtype),
                # (mypy joins this **kwargs dict's values to object)
                callbacks=callbacks, **({} if ranks is None else {"reduce_sums": ranks.reduce,  # type: ignore[arg-type]
                                                                   "main_process": ranks.rank == 0}))

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.epochs.loop.history

    def go_on(self, pause: Callable[[training.Loop], bool] | None = None) -> bool:
        """Train on (:meth:`training.EpochRun.go_on`): True where ``pause`` held after an epoch."""
        with self.rng.active():
            return self.epochs.go_on(pause)

    def finish(self) -> list[dict[str, Any]]:
        """End the fit (:meth:`training.EpochRun.finish`) and return its history."""
        with self.rng.active():
            return self.epochs.finish()


def continuation_plan(task: str, p: dict[str, Any], fitted: FitResult, pairs: PairData, *, seed: int,
                      epochs: int = 1) -> FitPlan:
    """The plan of ``epochs`` more epochs of a fitted network (``partial_fit``): the "auto" rules see
    the fitted sequence lengths and vocabulary, so every call (and a loaded model) trains alike."""
    p = resolve_auto(p, DataShape(len(pairs), cast("tuple[int, int]", tuple(fitted.max_lens)),
                                  vocab_size=max(fitted.vocab_sizes), min_lens=shortest_lengths(pairs), task=task,
                                  id_contexts=id_contexts(pairs)))
    net = fitted.net
    # sides=(): a continued network's encoders are fixed by its config (pretrained files are not reread)
    return FitPlan(task=task, params=p, sides=(), vocab_sizes=cast("tuple[int, int]", tuple(fitted.vocab_sizes)),
                   max_lens=cast("tuple[int, int]", tuple(fitted.max_lens)), config=net.config,
                   settings=train_settings(task, dict(p, epochs=epochs), fitted.targets), targets=fitted.targets,
                   seed=seed, dtype=next(net.parameters()).dtype)


def reusable_net(old_net: Object2VecNet | None, config: NetworkConfig, warm_start: bool) -> Object2VecNet | None:
    """The fitted network to continue from (``warm_start`` and the same architecture,
    vocabulary sizes aside), or None."""
    if not warm_start or old_net is None:
        return None
    same = all(old_net.config.get(key) == value for key, value in config.items() if key != "vocab_sizes")
    return old_net if same else None


def continued_history(previous: list[dict[str, Any]], history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``previous`` followed by ``history`` with epochs renumbered (new records; the inputs are not changed)."""
    start = previous[-1]["epoch"] if previous else 0
    # The weights are now those of the last epoch run, so no earlier epoch is "best".
    return ([{k: v for k, v in r.items() if k != "best"} for r in previous]
            + [dict(r, epoch=r["epoch"] + start) for r in history])


# ----------------------------------------------------------------- in-memory fits
def with_kept_recipe(estimator: Any, p: dict[str, Any]) -> dict[str, Any]:
    """``p`` with the settings of the recipe the fit kept (``auto_recipe_``) where ``p`` leaves them
    "auto": a warm start and ``partial_fit`` continue what the fitted network was trained with."""
    kept = getattr(estimator, "auto_recipe_", None)
    if not kept:
        return p
    # validate_value normalises each as a given parameter: the comparators _plain kept as a string to their tuple
    return dict(p, **{k: validate_value(k, v) for k, v in kept["settings"].items() if p[k] == "auto"})


def held_out(estimator: Any, validation: tuple[Any, Any, Any], pairs: PairData, encoded: np.ndarray,
             weight: np.ndarray, plan: FitPlan) -> tuple[tuple[PairData, training.EpochData] | None, np.ndarray]:
    """``((PairData, EpochData) or None, train_index)``: the records early stopping holds out, from
    ``validation = (X_val, y_val, sample_weight_val)`` or else a ``validation_fraction`` split."""
    X_val, y_val, sample_weight_val = validation
    n = len(encoded)
    if X_val is not None:
        if y_val is None:
            raise ValueError("X_val was given without y_val.")
        data, y_val = check_pairs(estimator, X_val, reset=False, y=y_val, y_numeric=estimator._task == "regression")
        index = np.arange(len(y_val))
        val = training.EpochData(index, index, plan.targets.transform(y_val),
                                 check_sample_weight(sample_weight_val, len(y_val)))
        return (finish_pairs(data, type(estimator).__name__), val), np.arange(n)
    fraction = plan.params["validation_fraction"]
    if not fraction:
        return None, np.arange(n)
    stratify = encoded if estimator._task == "classification" and np.bincount(encoded).min() >= 2 else None
    train_index, val_index = train_test_split(np.arange(n), test_size=fraction, random_state=plan.seed,
                                              stratify=stratify)
    val_index = np.sort(val_index)
    return (pairs, training.EpochData(val_index, val_index, encoded[val_index], weight[val_index])), \
        np.sort(train_index)


#: A recipe trained by :func:`fit_in_memory`: its network, vocabulary sizes, lengths and history.
_Trained = tuple[Object2VecNet, tuple[int, int], tuple[int, int], list[dict[str, Any]]]


def fit_in_memory(estimator: Any, p: dict[str, Any], fit: FitData,
                  validation: tuple[Any, Any, Any] = (None, None, None)) -> Any:
    """An in-memory ``fit``: targets, plans (the recipes compared, :func:`candidate_plans`), the held-out
    records, then each recipe trained (:class:`Training`), the later ones raced against the best before them
    (:class:`RecipeRace`), one that a faster recipe follows paused at its first late best while that one
    trains (:data:`~._auto.RECIPE_AFTER_SLOW`); the fitted state of the one with the best validation loss is
    applied (:func:`apply_result`) and the estimator returned. ``validation``: ``(X_val, y_val,
    sample_weight_val)``; a warm start (``estimator.warm_start``) continues its network."""
    task, name = estimator._task, type(estimator).__name__
    targets, encoded = encode_targets(task, fit.y, fit.weight, p)
    pairs = finish_pairs(fit.data, name)
    warm_net = getattr(estimator, "net_", None) if estimator.warm_start else None
    if warm_net is not None:  # a warm start continues the recipe the fitted model was trained with
        p = with_kept_recipe(estimator, p)
    plans = candidate_plans(task, p, summarize_pairs(pairs, fit.weight), targets, random_state=estimator.random_state,
                            name=name, external_validation=validation[0] is not None, compare=warm_net is None)
    plan = next(iter(plans.values()))
    assert pairs.in0 is not None and pairs.in1 is not None  # a fit's records hold both sides
    for i, (ragged, side) in enumerate(zip((pairs.in0, pairs.in1), plan.sides)):
        if side.vocab_size is not None:  # given (enc1 inherits enc0's): every record's ids must fit
            check_vocab(ragged, side.vocab_size, f"in{i}", name)
    held, train_index = held_out(estimator, validation, pairs, encoded, fit.weight, plan)
    device = resolve_device(estimator.device)
    trained: dict[str, _Trained] = {}
    losses: dict[str, float] = {}  # each recipe's validation loss, of the model it would keep
    paused: dict[str, _Paused] = {}
    converged: set[str] = set()  # the recipes the race ended on their own convergence
    for recipe, plan in plans.items():
        if not _worth_training(recipe, {**{k: v[3] for k, v in trained.items()},
                                        **{k: v.steps.history for k, v in paused.items()}}, converged):
            continue
        if any(_same_plan(plan, plans[earlier]) for earlier in (*trained, *paused)):
            # it would train the same network the same way (same seed): an explicit rate's dense and lazy Adam
            # where "auto" storage gives every table sparse rows anyway
            continue
        vocab, max_lens = plan.vocab_sizes, plan.max_lens
        warm = reusable_net(warm_net, plan.config, estimator.warm_start)
        if warm is not None:  # continue from the fitted network: its tables and lengths stay
            vocab, max_lens = estimator.vocab_sizes_, estimator.max_seq_lens_
        source = InMemorySource(pairs, epoch_data_factory(train_index, encoded, fit.weight,
                                                          plan.params["negative_sampling_rate"],
                                                          targets.negative_index), held)
        callbacks = resolve_callbacks(estimator.callbacks, plan.settings)
        # A recipe stops once it cannot beat the best one before it, or its own best. The first recipe at a
        # constant rate trains to its own early stop, as without a comparison: the race stopping its overfit
        # tail sooner changed what weight averaging kept (STS-B in 3 classes: 0.650 against 0.662).
        race = None
        if len(plans) > 1 and (losses or paused or plan.settings.learning_rate_decay < 1):
            race = RecipeRace(_bar(losses, paused), plan.settings.epochs, plan.settings.learning_rate_decay,
                              plan.settings.tolerance)
            callbacks.append(race)
        steps = Training(plan, source, device=device, net=warm, lens=(vocab, max_lens), callbacks=callbacks)
        follower = next((later for later, slow in RECIPE_AFTER_SLOW.items() if slow == recipe and later in plans), None)
        if steps.go_on(_learns_late if follower is not None else None):
            # Still improving after SLOW_BEST_EPOCH, so the faster recipe that follows it will train: it trains
            # now, and this one goes on afterwards only where it can still beat it (digit pairs: 7 epochs here,
            # not 16-30, where the fast recipe won on every seed; STS-B: it lost, and this one went on).
            paused[recipe] = _Paused(steps, race)
            if plan.settings.verbose:
                print(f"{name}: recipe {recipe!r} still improving at epoch {len(steps.history)}: "
                      f"trying {follower!r} before going on")
            continue
        if race is not None and race.stopped_by == "converged":
            converged.add(recipe)
        trained[recipe] = _finished(steps, vocab, max_lens, estimator.history_ if warm is not None else None)
        losses[recipe] = validation_loss(trained[recipe][3])
        done = recipe
        while (slow := RECIPE_AFTER_SLOW.get(done)) in paused:  # the recipe paused for this one (and so on back)
            waiting = paused.pop(slow)  # goes on where it can still win, then is finished
            _go_on_where_it_can_win(slow, waiting.steps, waiting.race, min(losses.values()),
                                    name if plan.settings.verbose else None)
            # a paused recipe is never a warm start (a warm start trains one plan): its plan's sizes
            trained[slow] = _finished(waiting.steps, plans[slow].vocab_sizes, plans[slow].max_lens, None)
            losses[slow] = validation_loss(trained[slow][3])
            done = slow
    assert not paused  # each went on, or ended, after the recipe it waited for
    losses = {recipe: losses[recipe] for recipe in plans if recipe in losses}  # in the plans' order
    chosen = min(losses, key=losses.__getitem__)
    record = recipe_record(plans, {k: trained[k][3] for k in losses}, losses, chosen)
    if record is not None and plan.settings.verbose:
        summary = ", ".join(f"{k} {v:.4g} ({record['epochs'][k]} epochs)" for k, v in losses.items())
        print(f"{name}: recipes compared on the validation split (best loss): {summary}; kept {chosen!r}")
    net, vocab, max_lens, history = trained[chosen]
    if record is None and warm_net is not None:
        record = getattr(estimator, "auto_recipe_", None)
    return apply_result(estimator, FitResult(net, vocab, max_lens, history, targets, recipe=record))


@dataclass
class _Paused:
    """A recipe paused while the recipe that follows it trains (:func:`fit_in_memory`)."""

    steps: Training
    race: RecipeRace | None


def _best_came_late(losses: list[float]) -> bool:
    """Whether the best of these validation losses (one per epoch) came after :data:`~._auto.SLOW_BEST_EPOCH`."""
    return bool(losses) and int(np.argmin(losses)) + 1 > SLOW_BEST_EPOCH


def _learns_late(loop: training.Loop) -> bool:
    """Pauses a recipe that :data:`~._auto.RECIPE_AFTER_SLOW` follows, at the first epoch that makes it slow."""
    return _best_came_late(validation_losses(loop.history))


def _worth_training(recipe: str, histories: Mapping[str, list[dict[str, Any]]], converged: set[str]) -> bool:
    """Whether ``recipe`` trains, given the histories of the recipes trained (or paused) before it and those
    of them the race ended on their own convergence: one of :data:`~._auto.RECIPE_AFTER_SLOW` only where the
    recipe it follows reached its best validation loss after :data:`~._auto.SLOW_BEST_EPOCH`; one of
    :data:`~._auto.RECIPE_AFTER_STARVED` only where the recipe it follows set its best validation loss at
    its last epoch (still improving: at its last epoch allowed, or where the best before it stopped it) and
    had not converged."""
    starved = RECIPE_AFTER_STARVED.get(recipe)
    if starved is not None and starved in histories:  # compared with it (not beside an explicit rate's dense Adam)
        losses = validation_losses(histories[starved])
        return bool(losses) and losses[-1] == min(losses) and starved not in converged
    slow = RECIPE_AFTER_SLOW.get(recipe)
    if slow is None or slow not in histories:
        return True
    return _best_came_late(validation_losses(histories[slow]))


def _same_plan(plan: FitPlan, other: FitPlan) -> bool:
    """Whether two recipes' plans build and train the same network with the same settings."""
    return plan.params == other.params and plan.config == other.config


def _bar(losses: Mapping[str, float], paused: Mapping[str, _Paused]) -> float:
    """The validation loss a recipe must beat: the best of those trained, and of the paused ones' epochs so far."""
    so_far = [min(validation_losses(waiting.steps.history)) for waiting in paused.values()]
    return min([*losses.values(), *so_far], default=float("inf"))


def _go_on_where_it_can_win(recipe: str, steps: Training, race: RecipeRace | None, bar: float,
                            name: str | None) -> None:
    """Train a paused recipe on, unless :class:`RecipeRace`'s projection of its validation losses cannot reach
    ``bar``, the best of the recipes trained since, and then only until it can no longer reach it (or to its
    own end); ``name``: print the decision."""
    settings = steps.epochs.settings
    losses = validation_losses(steps.history)
    projected = RecipeRace(bar, settings.epochs, settings.learning_rate_decay).projected_best(losses)
    goes_on = projected <= bar
    if name is not None:
        print(f"{name}: recipe {recipe!r}, paused at epoch {len(losses)}, projected to reach {projected:.4g} "
              f"against {bar:.4g}: {'goes on' if goes_on else 'ends there'}")
    if goes_on:  # from here it races the recipes trained while it waited
        if race is None:  # a first recipe at a constant rate: the bar stops it, or its own early stopping
            steps.epochs.callbacks.append(RecipeRace(bar, settings.epochs, settings.learning_rate_decay))
        else:
            race.bar = min(race.bar, bar)
        steps.go_on()


def _finished(steps: Training, vocab: tuple[int, int], max_lens: tuple[int, int],
              previous: list[dict[str, Any]] | None) -> _Trained:
    """A recipe's fit ended (:meth:`Training.finish`); ``previous``: the history a warm start continues."""
    history = steps.finish()
    if previous is not None:
        history = continued_history(previous, history)
    return steps.net, vocab, max_lens, history


def continue_in_memory(estimator: Any, p: dict[str, Any], fit: FitData) -> Any:
    """One more epoch of a fitted estimator (``partial_fit``): its network, classes, vocabulary,
    lengths, target scaling and kept recipe; a fresh optimizer; one more history record. Applies the
    fitted state and returns the estimator."""
    p = with_kept_recipe(estimator, p)
    pairs = finish_pairs(fit.data, type(estimator).__name__)
    fitted = FitResult.of(estimator)
    encoded = fitted.targets.transform(fit.y, what="y")
    # A fresh stream per call, reproducible for an int random_state.
    seed = int(np.random.default_rng([make_seed(estimator.random_state), len(estimator.history_)])
               .integers(np.iinfo(np.int32).max))
    plan = continuation_plan(estimator._task, p, fitted, pairs, seed=seed)
    source = InMemorySource(pairs, epoch_data_factory(np.arange(len(encoded)), encoded, fit.weight,
                                                      plan.params["negative_sampling_rate"],
                                                      fitted.targets.negative_index))
    _, history = run(plan, source, device=next(estimator.net_.parameters()).device, net=estimator.net_,
                     lens=(estimator.vocab_sizes_, estimator.max_seq_lens_),
                     callbacks=resolve_callbacks(estimator.callbacks, plan.settings))
    return apply_result(estimator, replace(fitted, history=continued_history(estimator.history_, history)))
