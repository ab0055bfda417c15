"""The one table of hyperparameters.

Every estimator parameter is declared here once: its type, its valid range
(SageMaker's documented range where SageMaker has the parameter), its default in
this library, SageMaker's default, and a line of documentation. The table drives

* fit-time validation (:func:`validate_params`),
* the parser for SageMaker's all-strings hyperparameter dict
  (:func:`parse_sagemaker_hyperparameters`),
* the CLI's ``--set name=value`` flags and ``--help`` text,
* the migration table in the documentation.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .nn.comparator import parse_comparator_list

__all__ = [
    "HyperParameter",
    "HYPERPARAMETERS",
    "ESTIMATOR_PARAMETERS",
    "SAGEMAKER_ONLY",
    "SAGEMAKER_IGNORED",
    "validate_params",
    "validate_value",
    "parse_sagemaker_value",
    "parse_sagemaker_hyperparameters",
    "sagemaker_defaults",
    "parameter_constraints",
]

NETWORKS = ("hcnn", "bilstm", "pooled_embedding")
#: Optimizers with sparse (row-wise) updates: what token_embedding_storage_type='row_sparse' needs.
SPARSE_OPTIMIZERS = ("adam", "adagrad", "sgd")
COMPARATORS = ("hadamard", "concat", "abs_diff")


@dataclass(frozen=True)
class HyperParameter:
    """One row of the table.

    ``kind`` is one of ``int``, ``float``, ``bool``, ``choice``, ``str``,
    ``comparator``. ``low``/``high`` bound numbers (inclusive), ``choices`` the
    allowed strings. ``auto`` allows the string ``"auto"``; ``none_ok`` allows
    ``None`` (meaning "infer" or "off", as ``doc`` says).
    """

    name: str
    kind: str
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    auto: bool = False
    none_ok: bool = False
    sagemaker: bool = True
    sagemaker_default: Any = None

    def describe_range(self) -> str:
        parts = []
        if self.kind == "choice":
            parts.append(" | ".join(repr(c) for c in self.choices))
        elif self.kind == "comparator":
            parts.append("non-empty comma-separated subset of " + ", ".join(COMPARATORS))
        elif self.kind == "bool":
            parts.append("true | false")
        elif self.kind in ("int", "float"):
            hi = "inf" if self.high is None else _fmt(self.high)
            parts.append(f"{self.kind} in [{_fmt(self.low)}, {hi}]")
        else:
            parts.append(self.kind)
        if self.auto:
            parts.append("'auto'")
        if self.none_ok:
            parts.append("None")
        return " or ".join(parts)


def _fmt(x: object) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e7:
        return str(int(x))
    return str(x)


def _enc(i: int, suffix: str, **kw: Any) -> HyperParameter:
    return HyperParameter(name=f"enc{i}_{suffix}", **kw)


def _encoder_rows(i: int) -> list[HyperParameter]:
    side = "in0" if i == 0 else "in1"
    inherit = "" if i == 0 else " Used only when enc1_network is not 'enc0'."
    rows = [
        _enc(i, "max_seq_len", kind="int", low=1, high=5000, default=None, none_ok=True,
             doc=f"Longest {side} sequence the encoder reads; longer ones are truncated. "
                 f"None infers it from the training data (capped at 5000).{inherit}"),
        _enc(i, "vocab_size", kind="int", low=2, high=3_000_000, default=None, none_ok=True,
             doc=f"Number of token ids of {side}: ids must be < vocab_size at fit time. None infers "
                 f"max id + 1 from the training data. Unseen ids at predict time use an unknown-token row.{inherit}"),
        _enc(i, "layers", kind="int", low=1, high=4, default="auto", auto=True,
             sagemaker_default="auto",
             doc=f"Encoder depth; 'auto' is 4 for hcnn and 1 for bilstm, ignored by pooled_embedding.{inherit}"),
        _enc(i, "cnn_filter_width", kind="int", low=1, high=9, default="auto" if i == 0 else 3, auto=i == 0,
             sagemaker_default=3,
             doc="Convolution width of the hcnn encoder."
                 + (" 'auto': the tuple's length when enc0_network='auto' chose hcnn for a tuple of fields, "
                    "else 3." if i == 0 else inherit)),
        _enc(i, "token_embedding_dim", kind="int", low=2, high=1000, default=300, sagemaker_default=300,
             doc=f"Token embedding size. pooled_embedding forces it to enc_dim, as SageMaker does.{inherit}"),
        _enc(i, "pretrained_embedding_file", kind="str", default=None, none_ok=True, sagemaker_default="",
             doc=f"GloVe/word2vec text file (plain or gzip, optional 'count dim' header) of pretrained "
                 f"token vectors for the {side} table (a path, or a file name inside the auxiliary "
                 f"channel). Ids without a vector keep a random row. The file's dimension sets the "
                 f"token embedding dim (an explicit, different value is an error); pooled_embedding "
                 f"then projects it to enc_dim. With a tied or shared table one file fills it."),
        _enc(i, "vocab_file", kind="str", default=None, none_ok=True, sagemaker_default="",
             doc=f"JSON file mapping tokens to ids, placing the pretrained vectors of {side} (without "
                 f"it, the i-th vector is id i). With vocab_size None the vocabulary covers its ids too."),
        _enc(i, "freeze_pretrained_embedding", kind="bool", default=True, sagemaker_default=True,
             doc=f"Keep the pretrained {side} token table fixed during training."),
    ]
    if i == 0:
        rows.insert(0, _enc(0, "network", kind="choice", choices=NETWORKS, default="auto", auto=True,
                            sagemaker_default="hcnn",
                            doc="Encoder of in0: hierarchical CNN, bidirectional LSTM or masked mean (or max) of "
                                "token embeddings. 'auto' (SageMaker: hcnn) is pooled_embedding, the fastest and "
                                "the best or near-best encoder measured on sentences, ratings and digit pairs, "
                                "except for tuples of fields (every record of a side the same 2-8 tokens, "
                                "against another tuple, or against single ids in a classifier: [head, relation] "
                                "vs tail): one hcnn layer as wide as the tuple, which reads which token sits in "
                                "which field (Kinships filtered MRR 0.746 vs 0.642 pooled); with "
                                "enc1_network='enc0' a single-id side keeps pooled_embedding."))
    else:
        rows.insert(0, _enc(1, "network", kind="choice", choices=("enc0",) + NETWORKS, default="enc0",
                            sagemaker_default="enc0",
                            doc="Encoder of in1. 'enc0' copies enc0's configuration (not its weights)."))
    return rows


HYPERPARAMETERS: tuple[HyperParameter, ...] = tuple(
    [
        HyperParameter("enc_dim", "int", "auto", low=4, high=10000, sagemaker_default=4096, auto=True,
                       doc="Size of each encoder's output vector (the embedding). 'auto': 384 for pairs of "
                           "word sequences read by pooled encoders (as for max pooling: both sides sequences, "
                           "a vocabulary of at least 1,000 ids; on STS-B 0.755 test Pearson vs 0.743 at 128, and "
                           "0.640 vs 0.625 accuracy on its scores in 3 classes), else 128. SageMaker's default "
                           "4096 is impractical on a laptop."),
    ]
    + _encoder_rows(0)
    + _encoder_rows(1)
    + [
        HyperParameter("comparator_list", "comparator", "auto", auto=True,
                       sagemaker_default="hadamard, concat, abs_diff",
                       doc="How the two encodings are joined, in order: hadamard (e0*e1), "
                           "concat ([e0; e1]), abs_diff (abs(e0 - e1)). A string or a tuple. 'auto': "
                           "SageMaker's 'hadamard, concat, abs_diff', except in the Adam recipe that a fit "
                           "of one id per side compares (see ``auto_recipe_``), which leaves out abs_diff: "
                           "on planted noisy ratings it overfits (see 'Choosing settings')."),
        HyperParameter("mlp_layers", "int", "auto", low=0, high=10, sagemaker_default=2, auto=True,
                       doc="Number of hidden MLP layers after the comparator (0 goes straight to the output "
                           "layer). 'auto': 0 when every record is one id per side, or an id followed by "
                           "context tokens (user-item: hadamard and concat into a linear output is biased matrix "
                           "factorisation, which a hidden layer only overfits), else 1."),
        HyperParameter("mlp_dim", "int", 128, low=2, high=10000, sagemaker_default=512,
                       doc="Width of each MLP layer."),
        HyperParameter("mlp_activation", "choice", "relu", choices=("tanh", "relu", "linear"),
                       sagemaker_default="linear", doc="Activation of the MLP layers."),
        HyperParameter("dropout", "float", "auto", low=0.0, high=1.0, sagemaker_default=0.0, auto=True,
                       doc="Dropout probability on the comparator output and after each MLP layer "
                           "(SageMaker: 0). 'auto': 0.6 for tuples of fields (link prediction, mean of 2 "
                           "seeds: UMLS valid MRR 0.867 vs 0.837 with 0.3, Kinships 0.763 vs 0.741), else "
                           "0.3 (STS-B: 0.04-0.07 Pearson over none)."),
        HyperParameter("epochs", "int", 30, low=1, high=100, sagemaker_default=30,
                       doc="Number of passes over the training data."),
        HyperParameter("mini_batch_size", "int", "auto", low=1, high=10000, sagemaker_default=32, auto=True,
                       doc="Records per training step. 'auto': about n_records / 256 rounded down to a "
                           "power of two, within [32, 256]: 32 (SageMaker's default) up to 16,000 records, "
                           "so small data sets keep enough steps per epoch; 256 from about 65,000 records, so "
                           "large ones train several times faster per epoch. The ratings recipe (Adagrad on one id "
                           "per side) reads 4 times that, up to 1,024: MovieLens's RMSE unchanged in half the time."),
        HyperParameter("learning_rate", "float", "auto", low=1e-6, high=1.0, sagemaker_default=0.0004,
                       auto=True,
                       doc="Optimizer step size. 'auto': 0.001 for sequence pairs (adam; an in-memory fit whose "
                           "best epoch comes late also trains 0.01 and keeps the better, ``auto_recipe_``), 0.05 "
                           "when a side is a single id (adagrad). A rate you set keeps a constant schedule "
                           "(learning_rate_decay 'auto' is then 1) and, with optimizer 'auto', trains with adam "
                           "up to 0.01 (weight_decay 'auto' then 0; with one id per side, the Adam recipe the fit "
                           "compares: weight_decay 3e-4, dropout 0, comparator_list 'hadamard, concat', each where "
                           "'auto', with its tables as 'auto' storage makes them and with sparse rows, the better "
                           "kept on the validation split, ``auto_recipe_``), so an Adam-sized rate never meets "
                           "Adagrad."),
        HyperParameter("optimizer", "choice", "auto",
                       choices=("adam", "adagrad", "adadelta", "sgd", "rmsprop"), auto=True,
                       sagemaker_default="adam",
                       doc="Optimizer. 'auto': adam for sequence pairs (both sides longer than one token "
                           "somewhere); adagrad when a side is a single id (user-item, entity-entity): "
                           "with weight decay it shrinks rarely seen id rows, matrix factorisation's "
                           "regularisation. With one id per side an in-memory fit compares adagrad with adam "
                           "(``auto_recipe_``); optimizer='adam' alone trains that Adam recipe (learning_rate 0.003, "
                           "weight_decay 3e-4, dropout 0, comparator_list 'hadamard, concat', each where 'auto')."),
        HyperParameter("weight_decay", "float", "auto", low=0.0, high=10000.0, sagemaker_default=0.0,
                       auto=True,
                       doc="L2 weight decay on every parameter, token tables included (dense storage). "
                           "'auto': 0 for sequence pairs, 0.001 when both sides are single ids (user-item, with "
                           "the ratings recipe's batch of up to 1,024: MovieLens RMSE 0.861 vs 0.866 with 0.002 "
                           "at batch 256), 0.0005 when one side is."),
        HyperParameter("early_stopping_patience", "int", 5, low=1, high=5, sagemaker_default=3,
                       doc="Epochs without improvement of the validation loss (cross-entropy, or mean "
                           "squared error in the target's units, of X_val or of the validation_fraction "
                           "hold-out) before training stops; the best epoch's weights are kept. Without "
                           "validation data all epochs run."),
        HyperParameter("early_stopping_tolerance", "float", 0.001, low=1e-6, high=0.1,
                       sagemaker_default=0.01,
                       doc="Decrease of the validation loss that counts as an improvement."),
        HyperParameter("negative_sampling_rate", "int", 0, low=0, high=100, sagemaker_default=0,
                       doc="Classification only: negatives made per positive record each epoch, "
                           "pairing its in0 with the in1 of another record, label 0."),
        HyperParameter("tied_token_embedding_weight", "bool", False, sagemaker_default=False,
                       doc="Share one token-embedding table between enc0 and enc1 (only the table)."),
        HyperParameter("token_embedding_storage_type", "choice", "auto", choices=("dense", "row_sparse"),
                       auto=True, sagemaker_default="dense",
                       doc="'row_sparse': sparse gradients on the token tables, so a step updates only the rows "
                           "its batch used and costs in proportion to the batch, not the vocabulary (optimizer "
                           "adam, adagrad or sgd); weight_decay then acts on a row lazily, when a step next "
                           "uses it (the decay dense storage would have applied meanwhile, in closed form), and "
                           "on the dense layers every step. 'dense': SageMaker's default, every row of both "
                           "tables is updated and decayed every step (the cost of a step grows with the "
                           "vocabulary). 'auto': per table, row_sparse for a table of at least 5,000 rows when "
                           "the optimizer has sparse updates and a step reads at most half its rows, else dense "
                           "(a dense step is cheaper there: a table of 672 users beside 9,067 items, or users "
                           "followed by every item they rated, stays dense). A fit comparing recipes (one id per side) "
                           "may also train lazy Adam on sparse rows where its ratings recipe starved; an "
                           "explicit 'dense' leaves that recipe out."),
        HyperParameter("bucket_width", "int", 0, low=0, high=100, sagemaker_default=0,
                       doc="Group training records whose lengths differ by at most this much into "
                           "batches (0: no bucketing)."),
        # Our additions that change what is learned. Their sagemaker_default reproduces
        # SageMaker's behaviour, so from_sagemaker_hyperparameters trains what SageMaker trains.
        HyperParameter("shared_encoder", "bool", "auto", auto=True, sagemaker=False, sagemaker_default=False,
                       doc="enc1 is enc0: one encoder and one token table for both sides (a Siamese / "
                           "bi-encoder), so both embeddings live in one space. 'auto' shares when both "
                           "sides hold sequences (some in0 and some in1 longer than one token) and enc1 "
                           "is configured as enc0: symmetric inputs such as sentence pairs. SageMaker's "
                           "encoders never share weights."),
        HyperParameter("embedding_l2", "float", 0.0, low=0.0, high=10.0, sagemaker=False,
                       sagemaker_default=0.0,
                       doc="L2 penalty on the token-table rows each batch uses (the per-occurrence "
                           "regulariser of SGD matrix factorisation), added to the loss as embedding_l2 "
                           "times the mean squared norm of a record's token vectors. Unlike weight_decay "
                           "it touches only the rows in the batch, so it keeps row_sparse updates sparse. "
                           "Off by default: measured, it did not beat weight decay (see 'Choosing settings')."),
        # scikit-learn side: not SageMaker hyperparameters.
        HyperParameter("validation_fraction", "float", "auto", low=0.0, high=0.9, none_ok=True, auto=True,
                       sagemaker=False, sagemaker_default=None,
                       doc="Hold out this fraction of the training data for early stopping when no "
                           "validation set is passed to fit. None or 0: no early stopping without X_val. "
                           "'auto' (as HistGradientBoosting's early_stopping='auto'): 0.1 when fit gets "
                           "at least 1,000 records (a regressor: 500), else no hold-out; streamed fits use "
                           "X_val only."),
        HyperParameter("dtype", "choice", "float32", choices=("float32", "float64"), sagemaker=False,
                       doc="Floating-point type of the network. float64 is about 1.6x slower on CPU; "
                           "see the persistence page for what is reproducible in each."),
        HyperParameter("device", "str", "auto", sagemaker=False,
                       doc="'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ... A model fitted "
                           "on CUDA unpickles and loads on CPU."),
        HyperParameter("random_state", "random_state", None, none_ok=True, sagemaker=False,
                       doc="Seed for weight initialisation, shuffling, dropout and negative sampling."),
        HyperParameter("verbose", "int", 0, low=0, high=None, sagemaker=False,
                       doc="0: silent; 1: a progress bar per epoch; 2: also a line per epoch."),
        HyperParameter("warm_start", "bool", False, sagemaker=False,
                       doc="Refit from the fitted network's weights instead of a fresh one."),
        # Added after the table above was settled (new rows go last).
        HyperParameter("pooling", "choice", "auto", choices=("mean", "max", "head_mean"), auto=True, sagemaker=False,
                       sagemaker_default="mean",
                       doc="How a pooled_embedding encoder pools its token vectors: 'mean' (SageMaker's "
                           "pooled_embedding) or 'max' (each dimension's largest value over the tokens, "
                           "InferSent's pooling) or 'head_mean' (the first token's vector plus the mean of the "
                           "others': an id followed by its context). 'auto': head_mean when each side is one id "
                           "or an id followed by context tokens (a user and the items the user rated), max when "
                           "both sides hold sequences over a vocabulary of at least 1,000 token ids (words), "
                           "else mean. Measured: STS-B from "
                           "scratch test Pearson 0.715-0.727 with max vs 0.65-0.67 with mean (3 seeds); digit "
                           "pairs (256 pixel tokens) accuracy 0.840 with max vs 0.888 with mean. Ignored by hcnn "
                           "and bilstm (bilstm always max-pools its states, hcnn its feature maps)."),
        HyperParameter("learning_rate_decay", "float", "auto", low=0.01, high=1.0, auto=True, sagemaker=False,
                       sagemaker_default=1.0,
                       doc="Factor the learning rate is multiplied by after every epoch (an LRScheduler "
                           "callback named 'lr_scheduler'; 1: constant). 'auto': 0.85 when both sides are "
                           "single ids (user-item), else 1. Measured on MovieLens (5-fold RMSE): 0.870 with "
                           "0.85 at the ratings recipe's batch (0.874 with 0.8 at batch 256, 0.877 constant; "
                           "tuned SVD 0.8775)."),
        HyperParameter("n_threads", "int", "auto", low=1, high=1024, auto=True, none_ok=True, sagemaker=False,
                       doc="Intra-op torch threads while fit, predict, transform and encode run, restored "
                           "afterwards (also on error). 'auto': 1 thread, except torch's own setting when an "
                           "encoder is hcnn (its convolutions gain from more): torch's threads busy-wait "
                           "between small operations and slow a fit several times beside any other busy "
                           "process. None: leave torch.set_num_threads as you set it. Results with random_state "
                           "are reproducible for the same thread count (see 'Reproducibility')."),
    ]
)

BY_NAME = {hp.name: hp for hp in HYPERPARAMETERS}
#: Filled by :func:`sagemaker_defaults`: SageMaker's own rows, plus ours that change the model.
_SAGEMAKER_FILLED = {hp.name for hp in HYPERPARAMETERS if hp.sagemaker} | {
    "shared_encoder", "embedding_l2", "validation_fraction", "pooling", "learning_rate_decay"}
ESTIMATOR_PARAMETERS = tuple(hp.name for hp in HYPERPARAMETERS)

#: SageMaker hyperparameters that choose the estimator rather than configure it.
SAGEMAKER_ONLY = {
    "output_layer": HyperParameter("output_layer", "choice", "softmax",
                                   choices=("softmax", "mean_squared_error"),
                                   sagemaker_default="softmax",
                                   doc="softmax: Object2VecClassifier; mean_squared_error: Object2VecRegressor."),
    "num_classes": HyperParameter("num_classes", "int", 2, low=2, high=30, sagemaker_default=2,
                                  doc="Number of classes (labels 0..num_classes-1); ignored for regression."),
}
#: The estimators' ``num_classes``: SageMaker's row (same range), with None (infer the classes) as default.
NUM_CLASSES_PARAMETER = dataclasses.replace(
    SAGEMAKER_ONLY["num_classes"], default=None, none_ok=True,
    doc="Classifier: labels are then the integers 0 .. num_classes - 1 (SageMaker's convention) even if "
        "some are absent from the training data. None infers the classes (of any type) from y. Ignored "
        "by the regressor, as in SageMaker.")
#: The estimators' ``callbacks`` (not a SageMaker hyperparameter, not in artifacts).
CALLBACKS_PARAMETER = HyperParameter(
    "callbacks", "callbacks", None, none_ok=True, sagemaker=False,
    doc="Extra callbacks of the epoch loop (:mod:`skobject2vec.callbacks`), as (name, callback) pairs "
        "or bare callbacks; one named like a default ('early_stopping', 'lr_scheduler', 'progress_bar', 'epoch_log') "
        "replaces it, (name, None) turns a default off. Their parameters are settable as "
        "callbacks__NAME__PARAM (set_params, GridSearchCV). Each fit uses clones. Not stored in artifacts.")
#: Every parameter of the estimators, in ``__init__`` order.
ESTIMATOR_ROWS = HYPERPARAMETERS + (NUM_CLASSES_PARAMETER, CALLBACKS_PARAMETER)
ESTIMATOR_BY_NAME = {hp.name: hp for hp in ESTIMATOR_ROWS}
#: MXNet plumbing that SageMaker's notebooks send; accepted and ignored.
SAGEMAKER_IGNORED = ("_kvstore", "_num_gpus", "_num_kv_servers")


def _constraints(hp: HyperParameter) -> list[Any] | str:
    """scikit-learn's constraint list for one row (see ``sklearn.utils._param_validation``)."""
    from sklearn.utils._param_validation import Interval, StrOptions

    if hp.kind == "random_state":
        return ["random_state"]
    if hp.kind in ("int", "float"):
        kind = numbers.Integral if hp.kind == "int" else numbers.Real
        allowed = [Interval(kind, hp.low, hp.high, closed="both" if hp.high is not None else "left")]
    elif hp.kind == "bool":
        allowed = ["boolean"]
    elif hp.kind == "choice":
        return [StrOptions(set(hp.choices) | ({"auto"} if hp.auto else set()))] + ([None] if hp.none_ok else [])
    elif hp.kind == "comparator":
        allowed = [str, tuple, list]  # parsed (and checked) by nn.comparator.parse_comparator_list
    elif hp.name == "device":
        return "no_validation"  # a str or a torch.device, checked by devices.resolve_device
    elif hp.kind == "callbacks":
        allowed = [list, tuple]  # items checked by callbacks.resolve_callbacks
    else:  # file names
        allowed = [str, os.PathLike]
    if hp.auto:
        allowed.append(StrOptions({"auto"}))
    if hp.none_ok:
        allowed.append(None)
    return allowed


def parameter_constraints() -> dict[str, Any]:
    """The estimators' ``_parameter_constraints``, generated from the table (one source)."""
    return {hp.name: _constraints(hp) for hp in ESTIMATOR_ROWS}


def _numpydoc_type(hp: HyperParameter) -> str:
    if hp.kind == "choice":
        kind = "{" + ", ".join(f'"{c}"' for c in hp.choices) + "}"
    elif hp.kind == "comparator":
        kind = "str or tuple of str"
    elif hp.kind == "random_state":
        return "int, RandomState instance or None"
    elif hp.kind == "callbacks":
        return "list of (str, Callback) or None"
    elif hp.kind in ("int", "float"):
        kind = f"{hp.kind} in [{_fmt(hp.low)}, {'inf' if hp.high is None else _fmt(hp.high)}]"
    else:
        kind = hp.kind
    return kind + (' or "auto"' if hp.auto else "") + (" or None" if hp.none_ok else "")


def numpydoc_parameters(rows: Iterable[HyperParameter] | None = None) -> str:
    """The numpydoc ``Parameters`` entries of ``rows`` (default: every estimator parameter,
    with ``num_classes``), from the table: each parameter is described once, here."""
    import textwrap

    rows = rows if rows is not None else ESTIMATOR_ROWS
    out = []
    for hp in rows:
        out.append(f"    {hp.name} : {_numpydoc_type(hp)}, default={hp.default!r}")
        out.extend(textwrap.wrap(hp.doc, width=92, initial_indent=" " * 8, subsequent_indent=" " * 8))
    return "\n".join(out) + "\n"


def _bad(name: str, value: object, hp: HyperParameter) -> ValueError:
    return ValueError(f"Invalid value for hyperparameter {name!r}: {value!r}; expected {hp.describe_range()}.")


def validate_value(name: str, value: Any) -> Any:
    """Check one value against the table and return it normalised.

    Raises
    ------
    ValueError
        Naming the parameter, the value and the valid range.
    """
    hp = BY_NAME.get(name) or SAGEMAKER_ONLY.get(name)
    if hp is None:
        raise ValueError(f"Unknown hyperparameter {name!r}.")
    return _check(hp, value)


def _check(hp: HyperParameter, value: Any) -> Any:
    name = hp.name
    if value is None:
        if hp.none_ok:
            return None
        raise _bad(name, value, hp)
    if hp.auto and isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    kind = hp.kind
    if kind in ("random_state", "callbacks"):
        return value  # checked by sklearn.utils.check_random_state / callbacks.resolve_callbacks
    if kind == "bool":
        if isinstance(value, (bool, numbers.Integral)) and value in (0, 1):
            return bool(value)
        raise _bad(name, value, hp)
    if kind == "int":
        if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
                or float(value) != int(value)):  # type: ignore[call-overload]  # typeshed: Real.__trunc__ need not return int
            raise _bad(name, value, hp)
        value = int(value)  # type: ignore[call-overload]  # as above: every Real converts with int()
    elif kind == "float":
        # NaN passes every range comparison (nan < low is False): refused by name here, not deep in torch.
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise _bad(name, value, hp)
        value = float(value)
    if kind in ("int", "float"):
        if (hp.low is not None and value < hp.low) or (hp.high is not None and value > hp.high):
            raise _bad(name, value, hp)
        return value
    if kind == "choice":
        if not isinstance(value, str) or value.strip().lower() not in hp.choices:
            raise _bad(name, value, hp)
        return value.strip().lower()
    if kind == "comparator":

        return parse_comparator_list(value)
    if kind == "str":
        if not isinstance(value, str):
            raise _bad(name, value, hp)
        return value
    raise AssertionError(kind)  # pragma: no cover


def validate_params(params: dict[str, Any]) -> dict[str, Any]:
    """Validate an estimator's ``get_params(deep=False)`` dict; return the normalised values."""
    return {name: _check(ESTIMATOR_BY_NAME[name], value) for name, value in params.items()
            if name in ESTIMATOR_BY_NAME}


_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def parse_sagemaker_value(name: str, raw: Any) -> Any:
    """Turn one value as SageMaker sends it (a string) into a typed value."""
    hp = BY_NAME.get(name) or SAGEMAKER_ONLY.get(name)
    if hp is None:
        raise ValueError(f"Unknown hyperparameter {name!r}.")
    if not isinstance(raw, str):
        return validate_value(name, raw)
    text = raw.strip()
    if hp.kind == "str":
        # SageMaker's "" means "no file".
        return validate_value(name, text or None)
    if hp.auto and text.lower() == "auto":
        return "auto"
    if hp.none_ok and text.lower() in ("", "none", "null", "auto"):
        return None
    value: bool | int | float | str
    try:
        if hp.kind == "bool":
            low = text.lower()
            if low in _TRUE:
                value = True
            elif low in _FALSE:
                value = False
            else:
                raise ValueError
        elif hp.kind == "int":
            as_float = float(text)
            if not as_float.is_integer():
                raise ValueError
            value = int(as_float)
        elif hp.kind == "float":
            value = float(text)
        elif hp.kind == "random_state":
            value = int(text)
        else:
            value = text
    except ValueError:
        raise _bad(name, raw, hp) from None
    return validate_value(name, value)


#: Parameters SageMaker requires or infers per job: never filled in with a default.
SAGEMAKER_NO_DEFAULT = tuple(f"enc{i}_{k}" for i in (0, 1) for k in ("max_seq_len", "vocab_size"))


def sagemaker_defaults() -> dict[str, Any]:
    """What a SageMaker job trains with for every key it does not set.

    Every SageMaker hyperparameter at SageMaker's default (except the sizes SageMaker
    requires, which stay ``None`` = inferred), and each of our own parameters that
    changes what is learned (``shared_encoder``, ``embedding_l2``,
    ``validation_fraction``) at the value that reproduces SageMaker's behaviour.
    """
    filled = {}
    for hp in HYPERPARAMETERS:
        if hp.name in SAGEMAKER_NO_DEFAULT or hp.name not in _SAGEMAKER_FILLED:
            continue
        filled[hp.name] = None if hp.sagemaker_default == "" else hp.sagemaker_default  # "": no file
    return filled


def _unknown_message(name: object) -> str:
    """"Unknown hyperparameter 'epoch': did you mean 'epochs'?" (the closest names, not all 40)."""
    import difflib

    known = list(ESTIMATOR_PARAMETERS) + list(SAGEMAKER_ONLY) + list(SAGEMAKER_IGNORED)
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
    hint = (f"did you mean {' or '.join(repr(c) for c in close)}?" if close
            else "`skobject2vec train --help` lists the hyperparameters.")
    return f"Unknown hyperparameter {name!r}: {hint}"


def parse_sagemaker_hyperparameters(hyperparameters: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parse a SageMaker hyperparameter dict.

    Returns
    -------
    params : dict
        Estimator parameters (typed).
    task : dict
        ``{"output_layer": ..., "num_classes": ...}``.

    Raises
    ------
    ValueError
        For an unknown name (as SageMaker does) or an out-of-range value. Names that
        start with ``_`` are SageMaker's own (``_tuning_objective_metric``, which
        every hyperparameter-tuning job adds; ``_kvstore``): logged and ignored.
    """
    params, task = {}, {"output_layer": "softmax", "num_classes": 2}
    for name, raw in hyperparameters.items():
        if name in SAGEMAKER_IGNORED:
            continue
        if name.startswith("_"):
            # SageMaker's reserved keys, e.g. _tuning_objective_metric that every tuning job adds: not ours
            logging.getLogger("skobject2vec").info("SageMaker hyperparameter %s=%r: reserved by SageMaker, ignored",
                                                   name, raw)
            continue
        if name in SAGEMAKER_ONLY:
            task[name] = parse_sagemaker_value(name, raw)
        elif name in BY_NAME:
            params[name] = parse_sagemaker_value(name, raw)
        else:
            raise ValueError(_unknown_message(name))
    return params, task
