"""Object2VecClassifier and Object2VecRegressor: the scikit-learn surface.

The estimators are thin shells: validation lives in :mod:`._validation`, batching
in :mod:`.data.batching`, the network in :mod:`.nn`, the loop in :mod:`.training`.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin, _fit_context
from sklearn.utils.validation import check_is_fitted

from . import _fit as plan_fit
from ._embedding_api import EmbeddingMixin
from ._validation import check_fit_data, check_pairs, finish_pairs
from .callbacks import as_named_list, named_callbacks
from .data.batching import Batcher, PairData
from .data.streaming import is_stream_source
from .fitted import fitted_state_restored_on_error
from .hyperparameters import (
    ESTIMATOR_BY_NAME,
    numpydoc_parameters,
    parameter_constraints,
    parse_sagemaker_hyperparameters,
    sagemaker_defaults,
    validate_params,
)
from .inference import OutputSpec, predict_outputs
from .io.artifact import register_estimator
from .io.artifact import save as save_artifact
from .nn.model import Object2VecNet
from .parallel.torchrun import fit_stream
from .threads import resolve_threads, torch_threads

__all__ = ["Object2VecClassifier", "Object2VecRegressor", "from_sagemaker_hyperparameters"]

_PARAMS_DOC = "\n" + numpydoc_parameters()


def _default(name):
    return ESTIMATOR_BY_NAME[name].default


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
        enc0_max_seq_len=_default("enc0_max_seq_len"),
        enc0_vocab_size=_default("enc0_vocab_size"),
        enc0_pretrained_embedding_file=_default("enc0_pretrained_embedding_file"),
        enc0_vocab_file=_default("enc0_vocab_file"),
        enc0_freeze_pretrained_embedding=_default("enc0_freeze_pretrained_embedding"),
        enc1_network=_default("enc1_network"),
        enc1_layers=_default("enc1_layers"),
        enc1_cnn_filter_width=_default("enc1_cnn_filter_width"),
        enc1_token_embedding_dim=_default("enc1_token_embedding_dim"),
        enc1_max_seq_len=_default("enc1_max_seq_len"),
        enc1_vocab_size=_default("enc1_vocab_size"),
        enc1_pretrained_embedding_file=_default("enc1_pretrained_embedding_file"),
        enc1_vocab_file=_default("enc1_vocab_file"),
        enc1_freeze_pretrained_embedding=_default("enc1_freeze_pretrained_embedding"),
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
        pooling=_default("pooling"),
        learning_rate_decay=_default("learning_rate_decay"),
        embedding_l2=_default("embedding_l2"),
        num_classes=_default("num_classes"),
        validation_fraction=_default("validation_fraction"),
        dtype=_default("dtype"),
        device=_default("device"),
        random_state=_default("random_state"),
        verbose=_default("verbose"),
        warm_start=_default("warm_start"),
        n_threads=_default("n_threads"),
        callbacks=_default("callbacks"),
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
        self.pooling = pooling
        self.learning_rate_decay = learning_rate_decay
        self.embedding_l2 = embedding_l2
        self.num_classes = num_classes
        self.validation_fraction = validation_fraction
        self.dtype = dtype
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.n_threads = n_threads
        self.callbacks = callbacks

    # --------------------------------------------- callbacks__NAME__PARAM
    def get_params(self, deep=True):
        """Parameters of this estimator; with ``deep``, also ``callbacks__NAME__PARAM`` of each callback.

        Parameters
        ----------
        deep : bool, default=True
            Include the parameters of the ``callbacks``.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        params = super().get_params(deep=False)
        if deep:
            for name, callback in named_callbacks(self.callbacks).items():
                params[f"callbacks__{name}"] = callback
                params.update({f"callbacks__{name}__{k}": v for k, v in callback.get_params().items()})
        return params

    def set_params(self, **params):
        """Set parameters, including ``callbacks__NAME__PARAM`` of a named callback (as skorch does).

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : object
            The estimator.
        """
        nested = {k: params.pop(k) for k in list(params) if k.startswith("callbacks__")}
        super().set_params(**params)
        callbacks = named_callbacks(self.callbacks)
        for key, value in nested.items():
            name, _, param = key[len("callbacks__"):].partition("__")
            if name not in callbacks:
                raise ValueError(f"Invalid parameter {key!r} for {type(self).__name__}: no callback named {name!r} "
                                 f"(callbacks: {sorted(callbacks) or 'none'}); add it with callbacks=[({name!r}, "
                                 f"...)].")
            if param:
                callbacks[name].set_params(**{param: value})
            else:  # callbacks__NAME=<callback>: replace it
                self.callbacks = [(n, value if n == name else c) for n, c in as_named_list(self.callbacks)]
        return self

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
        return validate_params(self.get_params(deep=False))

    # ---------------------------------------------------------------- input
    def _pairs(self, X, *, reset, y="no_validation", single_side_ok=False):
        data, y = check_pairs(self, X, reset=reset, y=y, single_side_ok=single_side_ok,
                              y_numeric=self._task == "regression")
        return data, y

    def _finish_pairs(self, data):
        return finish_pairs(data, type(self).__name__)

    def _predict_pairs(self, X, single_side_ok=False) -> PairData:
        check_is_fitted(self, "net_")
        data, _ = self._pairs(X, reset=False, single_side_ok=single_side_ok)
        return self._finish_pairs(data)

    def _batcher(self):
        """Batches for the fitted network, on the device the network is on."""
        return Batcher(self.max_seq_lens_, self.vocab_sizes_, next(self.net_.parameters()).device)

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
        with fitted_state_restored_on_error(self):
            return self._fit(X, y, sample_weight, X_val, y_val, sample_weight_val)

    def _fit(self, X, y, sample_weight, X_val, y_val, sample_weight_val, epochs=None):
        if is_stream_source(X):
            return fit_stream(self, X, y=y, sample_weight=sample_weight, X_val=X_val, y_val=y_val,
                              sample_weight_val=sample_weight_val)
        p = self._validated_params()
        if epochs is not None:  # partial_fit's first call: one epoch, get_params() unchanged
            p["epochs"] = epochs
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            warnings.warn("fit() on in-memory data under torchrun trains a separate model on every rank; pass a "
                          "path to JSON Lines records to train data parallel.", UserWarning)
        fit = check_fit_data(self, X, y, sample_weight, reset=True)
        return plan_fit.fit_in_memory(self, p, fit, (X_val, y_val, sample_weight_val))

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch of training from the current weights (scikit-learn's incremental learning).

        The first call (or a call on an unfitted estimator) fits one epoch from
        scratch and must see every class (or use ``num_classes``); later calls
        continue from ``net_`` with the fitted classes, vocabulary sizes, sequence
        lengths and target scaling. Each call makes a fresh optimizer (its moments
        are not kept between calls) and appends one record to ``history_``. To continue
        a model loaded with :func:`skobject2vec.load` (SageMaker's incremental
        training), call ``partial_fit`` or ``set_params(warm_start=True).fit``.

        Parameters
        ----------
        X, y, sample_weight
            As in ``fit`` (in-memory data).
        classes : array-like or None, default=None
            Classifier: all the classes. Checked against those seen (first call) or
            fitted (later calls).

        Returns
        -------
        self : object
            The estimator, trained one more epoch.
        """
        if getattr(self, "net_", None) is None:
            if classes is not None and self._task == "classification":
                seen = np.unique(np.asarray(y))
                if not np.array_equal(np.sort(np.asarray(classes)), seen) and self.num_classes is None:
                    raise ValueError(f"The first partial_fit call must see every class of classes={list(classes)}"
                                     f" (got {seen.tolist()}), or set num_classes.")
            with fitted_state_restored_on_error(self):  # one epoch; self.epochs is never touched
                return self._fit(X, y, sample_weight, None, None, None, epochs=1)
        if classes is not None and self._task == "classification" and not np.array_equal(
                np.sort(np.asarray(classes)), np.asarray(self.classes_)):
            raise ValueError(f"classes={list(classes)} differ from the fitted classes {self.classes_.tolist()}.")
        fit = check_fit_data(self, X, y, sample_weight, reset=False)
        return plan_fit.continue_in_memory(self, self._validated_params(), fit)

    # -------------------------------------------------------------- output
    def _outputs(self, X, log=False):
        """Predictions in the user's units (:func:`skobject2vec.inference.postprocess`)."""
        pairs = self._predict_pairs(X)
        with torch_threads(self._inference_threads()):
            return predict_outputs(self.net_, pairs, self._batcher(), OutputSpec.of(self), log=log)

    def _inference_threads(self):
        """The thread count of predict, transform and encode (``n_threads``; :mod:`skobject2vec.threads`)."""
        return resolve_threads(getattr(self, "n_threads", "auto"), self.net_.config["networks"])

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
        return save_artifact(self, path, extras=extras, overwrite=overwrite)

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


#: The fitted attributes that only some fits set (both estimators' "Attributes").
_SOMETIMES_FITTED_DOC = """    auto_recipe_ : dict
        Only when the fit compared recipes on its validation split (one id per side, or
        sequence pairs, the optimisation settings "auto"; a recipe that follows a slow one
        trains only where that one learned late, one that follows a starved one only where
        that one ended still improving): ``chosen``, each trained recipe's
        ``validation_loss`` and epochs, and the
        ``settings`` the chosen recipe fixed. See ``docs/choosing_settings.rst``.
    n_records_ : int
        Only for fits streamed from JSON Lines: the training records.
"""


@register_estimator
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
""" + _SOMETIMES_FITTED_DOC + """
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
        return self._outputs(X, log=True)

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
        return np.exp(self.predict_log_proba(X))  # exactly exp of the log-probabilities

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


@register_estimator
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
""" + _SOMETIMES_FITTED_DOC + """    """

    _task = "regression"

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
        return self._outputs(X)


def from_sagemaker_hyperparameters(hyperparameters: dict, **overrides):
    """The estimator a SageMaker training job with these hyperparameters would train.

    ``output_layer='softmax'`` (the default) gives an :class:`Object2VecClassifier`,
    ``'mean_squared_error'`` an :class:`Object2VecRegressor`.
    """
    _, task = parse_sagemaker_hyperparameters(hyperparameters)
    cls = Object2VecClassifier if task["output_layer"] == "softmax" else Object2VecRegressor
    return cls.from_sagemaker_hyperparameters(hyperparameters, **overrides)
