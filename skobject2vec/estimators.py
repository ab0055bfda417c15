"""Object2VecClassifier and Object2VecRegressor: the scikit-learn surface.

The estimators are thin shells: validation lives in :mod:`._validation`, batching
in :mod:`.data.batching`, the network in :mod:`.nn`, the loop in :mod:`.training`.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin, _fit_context
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from . import training
from ._embedding_api import EmbeddingMixin
from ._validation import array_to_pairs, check_pairs, check_token_array, check_vocab
from .data.batching import PairData
from .data.streaming import is_stream_source
from .data.negatives import sample_negatives
from .text.pretrained import apply_pretrained_settings
from ._auto import DataShape, resolve_auto
from .hyperparameters import (BY_NAME, numpydoc_parameters, parameter_constraints, parse_sagemaker_hyperparameters,
                              sagemaker_defaults, validate_params)
from .nn.encoders import resolve_layers
from .nn.model import Object2VecNet

__all__ = ["Object2VecClassifier", "Object2VecRegressor", "from_sagemaker_hyperparameters"]

# enc1 settings copied from enc0 when enc1_network == "enc0" (its configuration, not its weights).
_INHERITED = ("network", "layers", "cnn_filter_width", "token_embedding_dim", "max_seq_len", "vocab_size")
_MAX_SEQ_LEN = 5000

_PARAMS_DOC = "\n" + numpydoc_parameters()


def _default(name):
    return BY_NAME[name].default


@contextlib.contextmanager
def _fitted_state_restored_on_error(estimator):
    """A fit that fails leaves the previous fitted state (``classes_``, ``net_``, ...) as it was,
    so a failed refit never pairs new classes with the old network."""
    def fitted():
        return {k: v for k, v in vars(estimator).items() if k.endswith("_") and not k.startswith("__")}

    before = fitted()
    try:
        yield
    except BaseException:
        for key in fitted().keys() - before.keys():
            delattr(estimator, key)
        vars(estimator).update(before)
        raise


class _Object2VecBase(BaseEstimator):
    _task: str = ""
    #: From the one table: fit raises scikit-learn's InvalidParameterError (a ValueError) naming
    #: the estimator, the parameter, the allowed values and the value given.
    _parameter_constraints: dict = parameter_constraints()

    def __init__(
        self,
        *,
        enc_dim=_default("enc_dim"),
        enc0_network=_default("enc0_network"),
        enc0_layers=_default("enc0_layers"),
        enc0_cnn_filter_width=_default("enc0_cnn_filter_width"),
        enc0_token_embedding_dim=_default("enc0_token_embedding_dim"),
        enc0_max_seq_len=None,
        enc0_vocab_size=None,
        enc0_pretrained_embedding_file=None,
        enc0_vocab_file=None,
        enc0_freeze_pretrained_embedding=True,
        enc1_network=_default("enc1_network"),
        enc1_layers=_default("enc1_layers"),
        enc1_cnn_filter_width=_default("enc1_cnn_filter_width"),
        enc1_token_embedding_dim=_default("enc1_token_embedding_dim"),
        enc1_max_seq_len=None,
        enc1_vocab_size=None,
        enc1_pretrained_embedding_file=None,
        enc1_vocab_file=None,
        enc1_freeze_pretrained_embedding=True,
        comparator_list=_default("comparator_list"),
        mlp_layers=_default("mlp_layers"),
        mlp_dim=_default("mlp_dim"),
        mlp_activation=_default("mlp_activation"),
        dropout=_default("dropout"),
        epochs=_default("epochs"),
        mini_batch_size=_default("mini_batch_size"),
        learning_rate=_default("learning_rate"),
        optimizer=_default("optimizer"),
        weight_decay=_default("weight_decay"),
        early_stopping_patience=_default("early_stopping_patience"),
        early_stopping_tolerance=_default("early_stopping_tolerance"),
        negative_sampling_rate=_default("negative_sampling_rate"),
        tied_token_embedding_weight=_default("tied_token_embedding_weight"),
        token_embedding_storage_type=_default("token_embedding_storage_type"),
        bucket_width=_default("bucket_width"),
        shared_encoder=_default("shared_encoder"),
        embedding_l2=_default("embedding_l2"),
        num_classes=None,
        validation_fraction=_default("validation_fraction"),
        dtype=_default("dtype"),
        device=_default("device"),
        random_state=None,
        verbose=_default("verbose"),
        warm_start=False,
    ):
        self.enc_dim = enc_dim
        self.enc0_network = enc0_network
        self.enc0_layers = enc0_layers
        self.enc0_cnn_filter_width = enc0_cnn_filter_width
        self.enc0_token_embedding_dim = enc0_token_embedding_dim
        self.enc0_max_seq_len = enc0_max_seq_len
        self.enc0_vocab_size = enc0_vocab_size
        self.enc0_pretrained_embedding_file = enc0_pretrained_embedding_file
        self.enc0_vocab_file = enc0_vocab_file
        self.enc0_freeze_pretrained_embedding = enc0_freeze_pretrained_embedding
        self.enc1_network = enc1_network
        self.enc1_layers = enc1_layers
        self.enc1_cnn_filter_width = enc1_cnn_filter_width
        self.enc1_token_embedding_dim = enc1_token_embedding_dim
        self.enc1_max_seq_len = enc1_max_seq_len
        self.enc1_vocab_size = enc1_vocab_size
        self.enc1_pretrained_embedding_file = enc1_pretrained_embedding_file
        self.enc1_vocab_file = enc1_vocab_file
        self.enc1_freeze_pretrained_embedding = enc1_freeze_pretrained_embedding
        self.comparator_list = comparator_list
        self.mlp_layers = mlp_layers
        self.mlp_dim = mlp_dim
        self.mlp_activation = mlp_activation
        self.dropout = dropout
        self.epochs = epochs
        self.mini_batch_size = mini_batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.early_stopping_patience = early_stopping_patience
        self.early_stopping_tolerance = early_stopping_tolerance
        self.negative_sampling_rate = negative_sampling_rate
        self.tied_token_embedding_weight = tied_token_embedding_weight
        self.token_embedding_storage_type = token_embedding_storage_type
        self.bucket_width = bucket_width
        self.shared_encoder = shared_encoder
        self.embedding_l2 = embedding_l2
        self.num_classes = num_classes
        self.validation_fraction = validation_fraction
        self.dtype = dtype
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = True  # token ids
        tags.input_tags.positive_only = True  # ids >= 0
        tags.input_tags.dict = True  # SageMaker records
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.target_tags.required = True
        return tags

    @classmethod
    def from_sagemaker_hyperparameters(cls, hyperparameters: dict, **overrides):
        """Build an estimator from SageMaker's hyperparameter dict (values as strings).

        ``output_layer`` must agree with the class (``softmax`` for the classifier,
        ``mean_squared_error`` for the regressor); use the module-level
        :func:`from_sagemaker_hyperparameters` to pick the class from it.
        ``overrides`` set scikit-learn parameters such as ``random_state``.
        Keys the job does not set take SageMaker's defaults
        (:func:`~skobject2vec.hyperparameters.sagemaker_defaults`), not this
        library's, so the estimator trains what the job trained on SageMaker.
        """
        parsed, task = parse_sagemaker_hyperparameters(hyperparameters)
        params = {**sagemaker_defaults(), **parsed}
        expected = "softmax" if cls._task == "classification" else "mean_squared_error"
        if task["output_layer"] != expected:
            raise ValueError(f"output_layer={task['output_layer']!r} does not match {cls.__name__} "
                             f"(expects {expected!r}); use skobject2vec.from_sagemaker_hyperparameters.")
        if cls._task == "classification" and "num_classes" in hyperparameters:
            params["num_classes"] = task["num_classes"]
        params.update(overrides)
        return cls(**params)

    # ------------------------------------------------------- configuration
    def _validated_params(self) -> dict:
        params = self.get_params()
        checked = validate_params(params)
        if params["num_classes"] is not None:
            from .hyperparameters import validate_value

            checked["num_classes"] = validate_value("num_classes", params["num_classes"])
        else:
            checked["num_classes"] = None
        return checked

    def _encoder_settings(self, p: dict):
        """Per-side settings with enc1 inheriting from enc0 when enc1_network == 'enc0'."""
        if p["shared_encoder"] and p["enc1_network"] not in ("enc0", p["enc0_network"]):
            raise ValueError(f"shared_encoder=True makes enc1 the very encoder of enc0, but enc1_network="
                             f"{p['enc1_network']!r} differs from enc0_network={p['enc0_network']!r}; set "
                             f"enc1_network='enc0' or shared_encoder=False.")
        sides = []
        for i in (0, 1):
            settings = {k: p[f"enc{i}_{k}"] for k in _INHERITED + (
                "pretrained_embedding_file", "vocab_file", "freeze_pretrained_embedding")}
            sides.append(settings)
        if p["enc1_network"] == "enc0" or p["shared_encoder"]:
            ignored = [f"enc1_{k}" for k in _INHERITED[1:] if p[f"enc1_{k}"] != BY_NAME[f"enc1_{k}"].default]
            if ignored:
                warnings.warn(f"{', '.join(ignored)} ignored: enc1_network='enc0' copies enc0's configuration "
                              f"(as SageMaker does). Set enc1_network explicitly to configure enc1.", UserWarning)
            for k in _INHERITED:
                sides[1][k] = sides[0][k]
        # A pretrained file fixes its side's token dim (both sides' when tied); see
        # data.vocab.apply_pretrained_settings.
        apply_pretrained_settings(sides, tied=p["tied_token_embedding_weight"],
                                  default_token_dim=BY_NAME["enc0_token_embedding_dim"].default)
        for s in sides:
            s["layers"] = resolve_layers(s["network"], s["layers"])
            if s["network"] == "pooled_embedding" and not s["token_dim_from_file"]:
                s["token_embedding_dim"] = p["enc_dim"]  # SageMaker forces this
        return sides

    def _resolve_vocab(self, pairs: PairData, sides, weight, tied):
        """Vocabulary sizes: given ones are checked, missing ones are max id + 1 of the
        records with positive weight (a zero weight means "not in the training set")
        and of the side's pretrained vocabulary, so that words met only at predict
        time keep their pretrained vectors instead of the unknown-token row."""
        name = type(self).__name__
        used = np.flatnonzero(weight > 0)
        sizes = []
        for i, ragged in enumerate((pairs.in0, pairs.in1)):
            given = sides[i]["vocab_size"]
            if given is not None:
                check_vocab(ragged, given, f"in{i}", name)
                sizes.append(given)
            else:
                pretrained = sides[i]["pretrained"]
                inferred = max(ragged.take(used).max_id() + 1, 2,
                               pretrained.max_id + 1 if pretrained is not None else 0)
                limit = BY_NAME[f"enc{i}_vocab_size"].high
                if inferred > limit:
                    # Checked before a table of that many rows is allocated.
                    where = f"field 'in{i}'"
                    if ragged.max_id() + 1 == inferred:  # the id is in the data (not only a pretrained vocab)
                        token = int(np.argmax(ragged.values))
                        where = f"record {int(np.searchsorted(ragged.offsets, token, side='right')) - 1}, " + where
                    raise ValueError(
                        f"{name}: {where} holds token id {inferred - 1}, which would need a vocabulary of "
                        f"{inferred:,} rows, above SageMaker's limit of {int(limit):,}. Re-number the ids densely "
                        f"from 0 (e.g. with sklearn.preprocessing.OrdinalEncoder or TextPairTokenizer).")
                sizes.append(inferred)
        if tied:
            given = [s["vocab_size"] for s in sides]
            if None not in given and given[0] != given[1]:
                raise ValueError(f"tied_token_embedding_weight=True needs one vocabulary, but enc0_vocab_size="
                                 f"{given[0]} and enc1_vocab_size={given[1]} differ.")
            if sides[0]["token_embedding_dim"] != sides[1]["token_embedding_dim"]:
                raise ValueError(
                    f"tied_token_embedding_weight=True needs one token table, but the token embedding dims "
                    f"differ: enc0 {sides[0]['token_embedding_dim']} vs enc1 {sides[1]['token_embedding_dim']}.")
            sizes = [max(sizes)] * 2
        return tuple(int(s) for s in sizes)

    # ---------------------------------------------------------------- input
    def _pairs(self, X, *, reset, y="no_validation", single_side_ok=False):
        data, y = check_pairs(self, X, reset=reset, y=y, single_side_ok=single_side_ok,
                              y_numeric=self._task == "regression")
        return data, y

    def _finish_pairs(self, data):
        if isinstance(data, PairData):
            return data
        return array_to_pairs(check_token_array(data, type(self).__name__))

    def _predict_pairs(self, X, single_side_ok=False) -> PairData:
        check_is_fitted(self, "net_")
        data, _ = self._pairs(X, reset=False, single_side_ok=single_side_ok)
        return self._finish_pairs(data)

    def _batcher(self):
        device_param = self.device
        if str(device_param).startswith("cuda") and not torch.cuda.is_available():
            device_param = "auto"  # fitted on a GPU, predicting on a CPU-only machine (as skobject2vec.load does)
        device = training.resolve_device(device_param)
        if next(self.net_.parameters()).device != device:
            self.net_.to(device)
        return training.Batcher(self.max_seq_lens_, self.vocab_sizes_, device)

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None, X_val=None, y_val=None, sample_weight_val=None):
        """Train on pairs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), list of dict, DataFrame, or path
            Integer token ids. A 2-D array holds in0 in its first ``n_features // 2``
            columns and in1 in the rest; records are ``{"in0": [...], "in1": [...]}``
            with any lengths; a DataFrame has ``in0``/``in1`` columns of lists.
            A path (str or Path) to a JSON Lines file or a folder of shards is streamed
            without loading it, data parallel under torchrun (see
            :func:`skobject2vec.parallel.fit_stream`); labels are then read from the
            records and ``y`` must be None.
        y : array-like of shape (n_samples,)
            Class labels (any type) or real-valued scores.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-record weights in the loss.
        X_val, y_val, sample_weight_val : optional
            Validation data (SageMaker's validation channel) for early stopping and
            validation metrics; same formats as ``X``/``y``.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        with _fitted_state_restored_on_error(self):
            return self._fit(X, y, sample_weight, X_val, y_val, sample_weight_val)

    def _fit(self, X, y, sample_weight, X_val, y_val, sample_weight_val):
        if is_stream_source(X):
            from .parallel import fit_stream

            return fit_stream(self, X, y=y, sample_weight=sample_weight, X_val=X_val, y_val=y_val,
                              sample_weight_val=sample_weight_val)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            warnings.warn("fit() on in-memory data under torchrun trains a separate model on every rank; pass a "
                          "path to JSON Lines records to train data parallel.", UserWarning)
        p = self._validated_params()
        data, y = self._pairs(X, reset=True, y=y)
        n = len(y)
        y_encoded = self._fit_targets(y, p)
        weight = _check_sample_weight(sample_weight, np.empty((n, 0)), dtype=np.float64, ensure_non_negative=True)
        self._check_enough_targets(y_encoded, weight, p)
        pairs = self._finish_pairs(data)
        p = resolve_auto(p, DataShape(n, (int(pairs.in0.lengths.max()), int(pairs.in1.lengths.max()))))
        if self._task == "regression" and p["negative_sampling_rate"] > 0:
            raise ValueError("negative_sampling_rate applies to classification (output_layer='softmax') only; "
                             "a regressor cannot label sampled negatives. Set negative_sampling_rate=0.")
        sides = self._encoder_settings(p)
        vocab = self._resolve_vocab(pairs, sides, weight, p["tied_token_embedding_weight"])
        max_lens = tuple(
            int(s["max_seq_len"]) if s["max_seq_len"] is not None
            else int(min(max(ragged.lengths.max(), 1), _MAX_SEQ_LEN))
            for s, ragged in zip(sides, (pairs.in0, pairs.in1))
        )
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        validation = self._validation_data(X_val, y_val, sample_weight_val, pairs, y_encoded, weight, p, seed)
        train_index = validation[2] if validation is not None else np.arange(n)
        device = training.resolve_device(self.device)
        dtype = torch.float64 if p["dtype"] == "float64" else torch.float32
        config = self._network_config(p, sides, vocab)
        settings = self._train_settings(p)
        # --- warm_start: continue from the fitted network when the architecture matches
        warm = self._reusable_net(config)
        if warm is not None:
            vocab, max_lens = self.vocab_sizes_, self.max_seq_lens_
        # --- end warm_start
        batcher = training.Batcher(max_lens, vocab, device)
        rng = np.random.default_rng(seed)
        epoch_data = self._epoch_data_factory(train_index, y_encoded, weight, p)
        fork_devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(seed)
            if warm is None:
                net = Object2VecNet(config)
                self._load_pretrained(net, sides)
            else:
                net = warm  # warm_start
            net.to(device=device, dtype=dtype)
            history = training.train(net, pairs, epoch_data, batcher, settings, rng=rng, dtype=dtype,
                                     sparse=config["sparse"],
                                     validation=None if validation is None else validation[:2])
        if warm is not None:
            history = self._continued_history(history)  # warm_start
        self.net_ = net
        self.vocab_sizes_ = vocab
        self.max_seq_lens_ = max_lens
        self.history_ = history
        self.n_epochs_ = len(history)
        return self

    def _network_config(self, p, sides, vocab) -> dict:
        return {
            "vocab_sizes": list(vocab),
            "token_dims": [int(s["token_embedding_dim"]) for s in sides],
            "networks": [s["network"] for s in sides],
            "layers": [int(s["layers"]) for s in sides],
            "filter_widths": [int(s["cnn_filter_width"]) for s in sides],
            "enc_dim": p["enc_dim"],
            "comparator": list(p["comparator_list"]),
            "mlp_layers": p["mlp_layers"],
            "mlp_dim": p["mlp_dim"],
            "mlp_activation": p["mlp_activation"],
            "dropout": p["dropout"],
            "n_outputs": len(self.classes_) if self._task == "classification" else 1,
            "tied": p["tied_token_embedding_weight"],
            "shared": p["shared_encoder"],
            "sparse": p["token_embedding_storage_type"] == "row_sparse",
        }

    def _train_settings(self, p) -> training.TrainSettings:
        return training.TrainSettings(
            task=self._task, epochs=p["epochs"], batch_size=p["mini_batch_size"], optimizer=p["optimizer"],
            learning_rate=p["learning_rate"], weight_decay=p["weight_decay"],
            patience=p["early_stopping_patience"], tolerance=p["early_stopping_tolerance"],
            bucket_width=p["bucket_width"], verbose=p["verbose"], embedding_l2=p["embedding_l2"],
            target_scale=getattr(self, "y_scale_", 1.0),
        )

    def _load_pretrained(self, net, sides):
        """Copy rows of pretrained token vectors into the tables (and freeze them)."""
        for i, s in enumerate(sides):
            if s["pretrained_embedding_file"] is None:
                continue
            from .text.pretrained import load_pretrained_table

            table = net.token_table(i)
            load_pretrained_table(table, s["pretrained_embedding_file"], s["vocab_file"],
                                  freeze=s["freeze_pretrained_embedding"], side=f"enc{i}")

    def _validation_data(self, X_val, y_val, sample_weight_val, pairs, y_encoded, weight, p, seed):
        """(PairData, EpochData, train_index) for early stopping, or None."""
        if X_val is not None:
            if y_val is None:
                raise ValueError("X_val was given without y_val.")
            data, y_val = self._pairs(X_val, reset=False, y=y_val)
            val_pairs = self._finish_pairs(data)
            val_targets = self._transform_targets(y_val)
            val_weight = _check_sample_weight(sample_weight_val, np.empty((len(y_val), 0)), dtype=np.float64,
                                              ensure_non_negative=True)
            index = np.arange(len(y_val))
            return (val_pairs, training.EpochData(index, index, val_targets, val_weight),
                    np.arange(len(y_encoded)))
        if p["validation_fraction"] is None or p["validation_fraction"] == 0:
            return None
        n = len(y_encoded)
        stratify = y_encoded if self._task == "classification" and np.bincount(y_encoded).min() >= 2 else None
        train_index, val_index = train_test_split(np.arange(n), test_size=p["validation_fraction"],
                                                  random_state=seed, stratify=stratify)
        val_index = np.sort(val_index)
        return (pairs, training.EpochData(val_index, val_index, y_encoded[val_index], weight[val_index]),
                np.sort(train_index))

    def _epoch_data_factory(self, train_index, targets, weight, p):
        base = training.EpochData(train_index, train_index, targets[train_index], weight[train_index])
        rate = p["negative_sampling_rate"]
        if rate == 0:
            return lambda epoch, rng: base
        negative = self._negative_class_index
        # Positions within train_index: negatives pair training records only, so a
        # held-out (validation_fraction) record's in1 never enters training.
        positives = np.flatnonzero(targets[train_index] != negative)

        def with_negatives(epoch, rng):
            left, right = sample_negatives(positives, len(train_index), rate, rng)
            left, right = train_index[left], train_index[right]
            return training.EpochData(
                np.concatenate([base.left, left]), np.concatenate([base.right, right]),
                np.concatenate([base.target, np.full(len(left), negative, dtype=base.target.dtype)]),
                np.concatenate([base.weight, weight[left]]),
            )

        return with_negatives

    # -------------------------------------------------------------- output
    def _raw_outputs(self, X):
        pairs = self._predict_pairs(X)
        return training.predict_outputs(self.net_, pairs, self._batcher(), self._task)

    # ------------------------------------------------------------- artifact
    def save(self, path, *, extras=None, overwrite=False):
        """Write the fitted model to the folder ``path`` as safetensors + JSON.

        Load it with :func:`skobject2vec.load`, on CPU or GPU; nothing is unpickled.

        Parameters
        ----------
        path : str or Path
            The artifact folder (created; an earlier artifact there is replaced atomically).
        extras : dict or None, default=None
            JSON-serialisable metadata stored beside the model.
        overwrite : bool, default=False
            Allow writing into a folder that is not a skobject2vec artifact (only the
            artifact's own files are written; nothing else is deleted).

        Returns
        -------
        path : Path
            The artifact folder.
        """
        from .io.artifact import save

        return save(self, path, extras=extras, overwrite=overwrite)

    # --------------------------------------------------------------- pickle
    def __getstate__(self):
        state = super().__getstate__()
        net = state.get("net_")
        if net is not None and next(net.parameters()).device.type != "cpu":
            # Pickles always hold CPU tensors, so a CUDA-trained model loads anywhere.
            cpu = Object2VecNet(net.config)
            cpu.to(next(net.parameters()).dtype)  # before loading: float64 weights stay float64
            cpu.load_state_dict({k: v.detach().cpu() for k, v in net.state_dict().items()})
            for name, param in net.named_parameters():
                cpu.get_parameter(name).requires_grad_(param.requires_grad)
            state = dict(state, net_=cpu.eval())
        return state

    # ----------------------------------------------- hooks per estimator kind
    def _fit_targets(self, y, p):  # pragma: no cover - overridden
        raise NotImplementedError

    def _transform_targets(self, y):  # pragma: no cover - overridden
        raise NotImplementedError

    def _check_enough_targets(self, y_encoded, weight, p):
        pass


class Object2VecClassifier(ClassifierMixin, EmbeddingMixin, TransformerMixin, _Object2VecBase):
    __doc__ = """Object2Vec pair classifier: two encoders, a comparator, an MLP and softmax.

    Parameters
    ----------""" + _PARAMS_DOC + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    net_ : Object2VecNet
        The trained torch module.
    vocab_sizes_ : tuple of int
        Token ids per side; larger ids use the unknown-token row.
    max_seq_lens_ : tuple of int
    history_ : list of dict
        Per epoch: ``train:cross_entropy``, and with validation data
        ``validation:cross_entropy`` and ``validation:accuracy``.
    n_epochs_ : int
    n_features_in_ : int
        Only when fitted on a 2-D array.

    Examples
    --------
    >>> from skobject2vec import Object2VecClassifier
    >>> X = [{"in0": [1, 2], "in1": [2]}, {"in0": [3], "in1": [4, 5]}] * 10
    >>> y = [1, 0] * 10
    >>> clf = Object2VecClassifier(enc_dim=8, epochs=5, random_state=0).fit(X, y)
    >>> clf.predict(X[:2]).shape
    (2,)
    """

    _task = "classification"

    def _fit_targets(self, y, p):
        check_classification_targets(y)
        y = np.asarray(y)
        if p["num_classes"] is not None:
            k = p["num_classes"]
            ok = np.array([isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in y.ravel()])
            values = y.astype(np.int64) if ok.all() else None
            if values is None or (values < 0).any() or (values >= k).any():
                bad = int(np.flatnonzero(~ok)[0]) if not ok.all() else int(
                    np.flatnonzero((values < 0) | (values >= k))[0])
                raise ValueError(f"y[{bad}] = {y.ravel()[bad]!r}: with num_classes={k}, labels must be the "
                                 f"integers 0..{k - 1}.")
            self.classes_ = np.arange(k)
            return values
        classes = np.unique(y)
        if p["negative_sampling_rate"] > 0:
            if classes.dtype.kind not in "iub":
                raise ValueError("negative_sampling_rate > 0 labels sampled negatives 0, so y must hold integer "
                                 f"labels (SageMaker's convention); got labels of type {classes.dtype}.")
            classes = np.union1d(classes, [0]).astype(classes.dtype)
        self.classes_ = classes
        return np.searchsorted(classes, y).astype(np.int64)

    @property
    def _negative_class_index(self):
        return int(np.flatnonzero(self.classes_ == 0)[0])

    def _check_enough_targets(self, y_encoded, weight, p):
        present = np.unique(y_encoded[weight > 0])
        if len(present) < 2 and not (p["negative_sampling_rate"] > 0 and len(self.classes_) >= 2):
            raise ValueError(
                f"Classifier can't train when only one class is present: y holds only {self.classes_[present]!r}"
                " (among records with positive sample_weight). Pass at least two classes, or all-positive data "
                "with negative_sampling_rate > 0."
            )

    def _transform_targets(self, y):
        y = np.asarray(y)
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if unknown.any():
            raise ValueError(f"y_val[{int(np.flatnonzero(unknown)[0])}] = {y[unknown][0].item()!r} is not one of the "
                             f"training classes {self.classes_.tolist()}.")
        return index.astype(np.int64)

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, computed stably in float64.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), list of dict or DataFrame
            Pairs in any format ``fit`` accepts.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        return self._raw_outputs(X)

    def predict_proba(self, X):
        """Class probabilities, rows summing to 1 (SageMaker's ``scores``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), list of dict or DataFrame
            Pairs in any format ``fit`` accepts.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        """Most probable class of each pair.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), list of dict or DataFrame
            Pairs in any format ``fit`` accepts.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Elements of ``classes_``.
        """
        log_proba = self.predict_log_proba(X)  # checks fitted first
        return self.classes_[np.argmax(log_proba, axis=1)]


class Object2VecRegressor(RegressorMixin, EmbeddingMixin, TransformerMixin, _Object2VecBase):
    __doc__ = """Object2Vec pair regressor: two encoders, a comparator, an MLP and a linear output
    trained with mean squared error (targets are standardised internally).

    Parameters
    ----------""" + _PARAMS_DOC + """
    Attributes
    ----------
    net_ : Object2VecNet
    vocab_sizes_, max_seq_lens_ : tuple of int
    history_ : list of dict
        Per epoch: ``train:mean_squared_error`` and, with validation data,
        ``validation:mean_squared_error`` (in the target's units).
    y_mean_, y_scale_ : float
        Target standardisation.
    """

    _task = "regression"

    def _fit_targets(self, y, p):
        y = np.array(y, dtype=np.float64)  # a copy: it is standardised in place below
        self.y_mean_, self.y_scale_ = 0.0, 1.0
        return y

    def _check_enough_targets(self, y, weight, p):
        # Weighted standardisation, so zero-weight records do not move the scale.
        mean = float(np.average(y, weights=weight))
        scale = float(np.sqrt(np.average((y - mean) ** 2, weights=weight)))
        self.y_mean_, self.y_scale_ = mean, (scale if scale > 0 else 1.0)
        y -= mean
        y /= self.y_scale_

    def _transform_targets(self, y):
        return (np.asarray(y, dtype=np.float64) - self.y_mean_) / self.y_scale_

    def predict(self, X):
        """Predicted score of each pair (SageMaker's ``scores[0]``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), list of dict or DataFrame
            Pairs in any format ``fit`` accepts.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            In the target's units.
        """
        return self._raw_outputs(X) * self.y_scale_ + self.y_mean_


def from_sagemaker_hyperparameters(hyperparameters: dict, **overrides):
    """The estimator a SageMaker training job with these hyperparameters would train.

    ``output_layer='softmax'`` (the default) gives an :class:`Object2VecClassifier`,
    ``'mean_squared_error'`` an :class:`Object2VecRegressor`.
    """
    _, task = parse_sagemaker_hyperparameters(hyperparameters)
    cls = Object2VecClassifier if task["output_layer"] == "softmax" else Object2VecRegressor
    return cls.from_sagemaker_hyperparameters(hyperparameters, **overrides)
