"""Build-time generation of the SageMaker migration tables.

The rows come from :mod:`skobject2vec.hyperparameters`, the table the estimators
validate against, so the documentation cannot drift from the code. The build
fails if a hyperparameter SageMaker documents is missing.
"""

from __future__ import annotations

from pathlib import Path

from skobject2vec.hyperparameters import HYPERPARAMETERS, SAGEMAKER_IGNORED, SAGEMAKER_ONLY

#: Every hyperparameter of the SageMaker Object2Vec developer guide
#: (object2vec-hyperparameters), for the completeness check.
SAGEMAKER_DOCUMENTED = (
    "enc0_max_seq_len", "enc0_vocab_size", "enc1_max_seq_len", "enc1_vocab_size", "enc_dim",
    "enc0_network", "enc1_network", "enc0_cnn_filter_width", "enc1_cnn_filter_width",
    "enc0_layers", "enc1_layers", "enc0_token_embedding_dim", "enc1_token_embedding_dim",
    "enc0_pretrained_embedding_file", "enc1_pretrained_embedding_file",
    "enc0_freeze_pretrained_embedding", "enc1_freeze_pretrained_embedding",
    "enc0_vocab_file", "enc1_vocab_file", "comparator_list", "mlp_layers", "mlp_dim", "mlp_activation",
    "output_layer", "num_classes", "negative_sampling_rate", "tied_token_embedding_weight",
    "token_embedding_storage_type", "bucket_width", "dropout", "early_stopping_patience",
    "early_stopping_tolerance", "epochs", "learning_rate", "mini_batch_size", "optimizer", "weight_decay",
)
#: SageMaker requires these; here ``None`` infers them from the training data.
_REQUIRED_THERE = ("enc0_max_seq_len", "enc0_vocab_size")


def _literal(value) -> str:
    if value is None:
        return "``None``"
    if isinstance(value, str):
        return f'``"{value}"``' if value else '``""``'
    return f"``{value!r}``"


def _range(hp) -> str:
    return f"``{hp.describe_range()}``"


def _cell(text: str) -> str:
    return " ".join(str(text).split())


def _prose(text: str) -> str:
    """Free text for a cell: ``|`` would start an RST substitution (``|e0-e1|``)."""
    return text.replace("|", "\\|")


def _row(cells) -> list[str]:
    lines = [f"   * - {_cell(cells[0])}"]
    lines += [f"     - {_cell(c)}" for c in cells[1:]]
    return lines


def _table(header, rows, widths) -> str:
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {' '.join(map(str, widths))}",
             "   :class: migration", ""]
    for row in [header] + rows:
        lines += _row(row)
    return "\n".join(lines) + "\n"


def sagemaker_rows() -> list[list[str]]:
    rows = []
    for hp in HYPERPARAMETERS:
        if not hp.sagemaker:
            continue
        sm_default = "required" if hp.name in _REQUIRED_THERE else _literal(hp.sagemaker_default)
        if hp.name.startswith("enc1_") and hp.name.endswith(("max_seq_len", "vocab_size")):
            sm_default = "required when ``enc1_network`` is not ``enc0``"
        same = hp.name not in _REQUIRED_THERE and hp.default == hp.sagemaker_default
        ours = _literal(hp.default) + ("" if same else " **(differs)**")
        rows.append([f"``{hp.name}``", _range(hp), sm_default, "same name", ours, _prose(hp.doc)])
    for name, hp in SAGEMAKER_ONLY.items():
        if name == "output_layer":
            target = ":class:`~skobject2vec.Object2VecClassifier` / :class:`~skobject2vec.Object2VecRegressor`"
            ours = "the class"
        else:
            target = "``num_classes=`` (classifier)"
            ours = "``None`` (infer the classes from ``y``) **(differs)**"
        rows.append([f"``{name}``", _range(hp), _literal(hp.sagemaker_default), target, ours, _prose(hp.doc)])
    for name in SAGEMAKER_IGNORED:
        rows.append([f"``{name}``", "(undocumented MXNet setting)", "``auto`` / ``device``", "(none)",
                     "accepted and ignored",
                     "Sent by SageMaker's example notebooks; devices are chosen with ``device=``."])
    return rows


def sklearn_rows() -> list[list[str]]:
    return [[f"``{hp.name}``", _range(hp), _literal(hp.default), _prose(hp.doc)]
            for hp in HYPERPARAMETERS if not hp.sagemaker]


def check_complete(rows) -> None:
    covered = {row[0].strip("`") for row in rows}
    missing = [name for name in SAGEMAKER_DOCUMENTED if name not in covered]
    if missing:
        raise RuntimeError(f"the migration table lacks SageMaker hyperparameters {missing}")


def write_migration_tables(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = sagemaker_rows()
    check_complete(rows)
    header = ["SageMaker hyperparameter", "valid values", "SageMaker default", "skobject2vec", "default here",
              "meaning"]
    (folder / "sagemaker_hyperparameters.inc").write_text(_table(header, rows, [15, 14, 9, 14, 11, 37]))
    (folder / "sklearn_parameters.inc").write_text(
        _table(["parameter", "valid values", "default", "meaning"], sklearn_rows(), [18, 18, 12, 40]))
