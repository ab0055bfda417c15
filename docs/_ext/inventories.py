"""Small intersphinx inventories for Python, NumPy, scikit-learn and PyTorch, built offline.

The documentation builds without network access (CI), so ``intersphinx_mapping``
points at the inventories in ``docs/_inv/`` that this script writes, not at the
projects' ``objects.inv`` online. They hold the names these pages refer to (add a
name to ``NAMES`` and rerun ``python docs/_ext/inventories.py``); the links point
at the projects' real pages, which follow one URL pattern per project. The role
of each name (class, function, ...) is read from the installed package, and its
version is recorded.
"""

from __future__ import annotations

import importlib
import inspect
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

BASE_URLS = {
    "python": "https://docs.python.org/3/",
    "numpy": "https://numpy.org/doc/stable/",
    "sklearn": "https://scikit-learn.org/stable/",
    "torch": "https://docs.pytorch.org/docs/stable/",
}

NAMES = {
    "python": ["zipfile", "gzip", "json", "logging", "pathlib.Path", "dict", "list", "str", "int", "float",
               "bool", "tuple", "os.PathLike", "difflib"],
    "numpy": ["numpy.ndarray", "numpy.float32", "numpy.float64", "numpy.int64", "numpy.random.Generator",
              "numpy.random.RandomState", "numpy.dtype"],
    "sklearn": ["sklearn.set_config", "sklearn.config_context", "sklearn.utils.Bunch",
                "sklearn.model_selection.GridSearchCV", "sklearn.model_selection.RandomizedSearchCV",
                "sklearn.neighbors.NearestNeighbors", "sklearn.pipeline.Pipeline", "sklearn.base.clone",
                "sklearn.base.BaseEstimator", "sklearn.base.TransformerMixin",
                "sklearn.neural_network.MLPClassifier", "sklearn.preprocessing.OrdinalEncoder",
                "sklearn.metrics.make_scorer"],
    "torch": ["torch.Tensor", "torch.nn.Module", "torch.nn.parallel.DistributedDataParallel",
              "torch.set_num_threads", "torch.device", "torch.dtype", "torch.nn.Embedding"],
}

# Pages that do not follow a project's usual pattern.
SPECIAL = {
    "python": {"pathlib.Path": "library/pathlib.html#$", "os.PathLike": "library/os.html#$",
               **{n: "library/functions.html#$" for n in ("int", "float", "bool")},
               **{n: "library/stdtypes.html#$" for n in ("str", "list", "dict", "tuple")}},
    "torch": {"torch.Tensor": "tensors.html#$", "torch.device": "tensor_attributes.html#$",
              "torch.dtype": "tensor_attributes.html#$"},
    "numpy": {"numpy.float32": "reference/arrays.scalars.html#$", "numpy.float64": "reference/arrays.scalars.html#$",
              "numpy.int64": "reference/arrays.scalars.html#$",
              "numpy.random.Generator": "reference/random/generator.html#$",
              "numpy.random.RandomState": "reference/random/legacy.html#$"},
}


def _resolve(name):
    import builtins

    if hasattr(builtins, name):
        return getattr(builtins, name)
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(name)


def _role(project, name, obj):
    if inspect.ismodule(obj):
        return "py:module"
    if project == "python" and name in SPECIAL["python"] and "html#$" in SPECIAL["python"][name]:
        return "py:class"
    if inspect.isclass(obj):
        return "py:class"
    if callable(obj):
        return "py:function"
    return "py:data"


def _uri(project, name, role):
    special = SPECIAL.get(project, {}).get(name)
    if special:
        return special
    if project == "python":
        return f"library/{name}.html#module-$" if role == "py:module" else f"library/{name.split('.')[0]}.html#$"
    if project == "numpy":
        return "reference/generated/$.html#$"
    if project == "sklearn":
        return "modules/generated/$.html#$"
    return "generated/$.html#$"


def write(folder: Path = HERE / "_inv") -> list[Path]:
    folder.mkdir(exist_ok=True)
    written = []
    for project, names in NAMES.items():
        module = importlib.import_module("sklearn" if project == "sklearn" else project if project != "python"
                                         else "sys")
        version = getattr(module, "__version__", None) or ".".join(map(str, module.version_info[:2]))
        lines = []
        for name in sorted(names):
            role = _role(project, name, _resolve(name))
            uri = _uri(project, name, role).replace("$.html", f"{name}.html")
            lines.append(f"{name} {role} 1 {uri} -")
            if role == "py:module" and project == "python":
                lines[-1] = f"{name} {role} 0 {uri} -"
        header = (f"# Sphinx inventory version 2\n# Project: {project}\n# Version: {version}\n"
                  "# The remainder of this file is compressed using zlib.\n").encode()
        path = folder / f"{project}.inv"
        path.write_bytes(header + zlib.compress(("\n".join(lines) + "\n").encode()))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write():
        print(path)
