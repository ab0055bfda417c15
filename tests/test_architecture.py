"""The package's layering: no import cycles, and no import inside a function to hide one."""

import ast
from pathlib import Path

import skobject2vec

PACKAGE = Path(skobject2vec.__file__).resolve().parent
#: Imports inside a function, allowed because they load an optional extra, not to dodge a cycle.
OPTIONAL_EXTRAS = {("cli", "serving")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _target(module: str, is_package: bool, node: ast.ImportFrom, alias: str, modules) -> str | None:
    """The package module an import statement loads (None: a third-party or stdlib import)."""
    if node.level == 0:
        base = node.module or ""
        if not base.startswith("skobject2vec"):
            return None
    else:
        parts = module.split(".")
        parent = parts if is_package else parts[:-1]
        parent = parent[: len(parent) - (node.level - 1)]
        base = ".".join(parent + ([node.module] if node.module else []))
    candidate = f"{base}.{alias}"
    return candidate if candidate in modules else base


def _imports(modules):
    """(importer, imported, inside a function) for every intra-package import."""
    edges = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        nested = {id(n) for f in functions for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    target = _target(name, path.name == "__init__.py", node, alias.name, modules)
                    if target is not None and target != name:
                        edges.append((name, target, id(node) in nested))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("skobject2vec"):
                        edges.append((name, alias.name, id(node) in nested))
    return edges


def _cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_import_graph_has_no_cycles():
    modules = _modules()
    graph = {}
    for source, target, _ in _imports(modules):
        # A package's __init__ importing its own submodules is how packages re-export; a
        # submodule importing a *sibling* through the package is what a cycle would look like.
        if source.startswith(target + ".") and target in modules and modules[target].name == "__init__.py":
            continue
        graph.setdefault(source, set()).add(target)
    assert len(graph) > 20  # the walk found the package's imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_no_import_inside_a_function_except_optional_extras():
    hidden = sorted({(s, t) for s, t, inside in _imports(_modules()) if inside})
    allowed = {(f"skobject2vec.{a}", f"skobject2vec.{b}") for a, b in OPTIONAL_EXTRAS}
    assert [edge for edge in hidden if edge not in allowed] == []


def test_network_knows_no_sklearn_and_no_records():
    """``nn/`` imports only torch, numpy and itself: no scikit-learn, no records, no estimators."""
    modules = _modules()
    outside = [(s, t) for s, t, _ in _imports(modules) if s.startswith("skobject2vec.nn") and
               not t.startswith("skobject2vec.nn")]
    assert outside == []
    for name, path in modules.items():
        if name.startswith("skobject2vec.nn"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            third_party = {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            third_party |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            assert "sklearn" not in third_party, name


def _function_source(path: Path, name: str) -> str:
    text = path.read_text(encoding="utf-8")
    node = next(n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef) and n.name == name)
    return ast.get_source_segment(text, node)


def test_fit_partial_fit_and_torchrun_train_through_the_one_runner():
    # skobject2vec._fit.run (or _fit.Training, the same runner in steps, where a fit pauses a recipe) builds or
    # continues the network and runs the epoch loop for every fit path
    for path, function in (("_fit.py", "fit_in_memory"), ("_fit.py", "continue_in_memory"),
                           ("parallel/torchrun.py", "train_stream")):
        body = _function_source(PACKAGE / path, function)
        assert " run(" in body or "plan_fit.run(" in body or " Training(" in body, (path, function)
    assert "Training(" in _function_source(PACKAGE / "_fit.py", "run")
    assert "plan_fit.fit_in_memory(" in _function_source(PACKAGE / "estimators.py", "_fit")
    assert "plan_fit.continue_in_memory(" in _function_source(PACKAGE / "estimators.py", "partial_fit")
    loop_callers = sorted(_module_name(p) for p in PACKAGE.rglob("*.py")
                          if "EpochRun(" in p.read_text(encoding="utf-8"))
    assert loop_callers == ["skobject2vec._fit"]


def _package_calls(path: Path, function: str) -> list[tuple[str, str]]:
    """``(module, called name)`` for each call in ``function`` of ``path`` into another package module
    (a name imported from it, an attribute of an imported module, or a method of the class that forwards to
    one: ``self._validated_params`` -> hyperparameters), in-memory path only (the streamed branch skipped)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            for alias in node.names:
                module = f"{node.module}.{alias.name}" if node.module else alias.name
                imported[alias.asname or alias.name] = node.module or module
    target = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function)
    calls = []

    def visit(node):
        if isinstance(node, ast.If) and "is_stream_source" in ast.unparse(node.test):
            visit(node.test)  # the check is a hop; the streamed branch is another path
            return
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in imported:
                calls.append((imported[func.id], func.id))
            elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                if func.value.id in imported:
                    calls.append((imported[func.value.id], func.attr))
                elif func.value.id == "self" and func.attr == "_validated_params":
                    calls.append(("hyperparameters", func.attr))
        for child in ast.iter_child_nodes(node):
            visit(child)

    for statement in target.body:
        visit(statement)
    return calls


def test_an_in_memory_fit_enters_each_package_module_once():
    calls = _package_calls(PACKAGE / "estimators.py", "_fit")
    modules = [module for module, _ in calls]
    assert len(calls) <= 4 and len(set(modules)) == len(modules), calls


def test_subpackages_reach_the_core_through_public_modules():
    # data/, io/, serving/, text/ and evaluation/ use what the core offers them (data.records, fitted, devices,
    # threads, inference, ...), never a private module of the root (_validation, _fit, _auto)
    private = []
    for importer, imported, _ in _imports(_modules()):
        if importer.split(".")[1:2] in (["data"], ["io"], ["serving"], ["text"], ["evaluation"]):
            if imported.split(".")[-1].startswith("_") and imported != "skobject2vec._version":
                private.append((importer, imported))
    assert private == []


def test_the_network_config_is_declared_once():
    # nn.model.NetworkConfig declares the keys; the plan builds exactly them, the artifact stores them
    import json
    import tempfile

    import numpy as np

    from skobject2vec import Object2VecRegressor
    from skobject2vec.nn.model import NetworkConfig

    X = np.random.default_rng(0).integers(0, 20, (40, 2))
    model = Object2VecRegressor(epochs=1, random_state=0).fit(X, X[:, 0] * 1.0)
    assert set(model.net_.config) == set(NetworkConfig.__annotations__)
    with tempfile.TemporaryDirectory() as folder:
        model.save(folder + "/m")
        with open(folder + "/m/config.json") as handle:
            assert set(json.load(handle)["network"]) == set(NetworkConfig.__annotations__)
