"""Model files: the safe artifact (safetensors + JSON), ONNX export, token-table export."""

from .artifact import load, read_config, save
from .onnx import onnx_inputs, to_onnx
from .tables import export_token_tables

__all__ = ["save", "load", "read_config", "to_onnx", "onnx_inputs", "export_token_tables"]
