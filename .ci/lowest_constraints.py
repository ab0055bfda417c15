#!/usr/bin/env python3
"""Write a pip constraints file that pins every direct dependency to its declared lower bound.

    python .ci/lowest_constraints.py [--extras serve,onnx,dev] [--output FILE]
    python .ci/lowest_constraints.py --build [--output FILE]
    VENV/bin/python .ci/lowest_constraints.py --check [--extras ...]

``--check`` prints each pinned distribution with the version installed in the running interpreter
and exits 1 when one differs (or is missing): proof that the tests ran against the lower bounds.

Reads pyproject.toml (stdlib only: tomllib), takes the core dependencies and the named extras (or,
with ``--build``, the build-system requirements instead), and writes one ``name==LOWER`` line per
distribution (PEP 503 names, so
``scikit_learn`` and ``scikit-learn`` are one entry; a name declared twice, as torch is in the core
and in ``onnx``, gets the higher of its lower bounds). Environment markers are kept. Extras in a
requirement (``dask[distributed]``) are dropped, constraints cannot carry them.

A direct dependency without a ``>=`` lower bound is an error: the project declares a tested
lower bound for every one (``make test-lowest`` installs exactly this set and runs the tests).

The build pins are a file of their own because pip applies ``-c`` files to the install only; the
Makefile hands the build file to pip's isolated build environments through ``PIP_CONSTRAINT``, where
a runtime pin such as numpy's would clash with other sdists' build requirements
(scikit-surprise builds against oldest-supported-numpy).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

_REQ = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<spec>[^;]*?)\s*(?:;\s*(?P<marker>.*))?$")
_LOWER = re.compile(r"^>=\s*(?P<version>[0-9][0-9A-Za-z.!+-]*)$")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _version_key(version: str) -> tuple:
    # Enough for release numbers such as 1.24, 2024.1, 0.4.1 (the project declares no pre-releases).
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.+-]", version))


def lower_bound(requirement: str) -> tuple[str, str, str | None]:
    """(normalised name, lower bound, marker or None) of one PEP 508 requirement string."""
    m = _REQ.match(requirement)
    if m is None:
        raise ValueError(f"cannot parse requirement {requirement!r}")
    bounds = []
    for part in filter(None, (p.strip() for p in m["spec"].split(","))):
        low = _LOWER.match(part)
        if low:
            bounds.append(low["version"])
    if not bounds:
        raise ValueError(f"{requirement!r} declares no lower bound (>=): every direct dependency needs one")
    return normalise(m["name"]), max(bounds, key=_version_key), (m["marker"] or None)


def constraints(pyproject: dict, extras: list[str], build: bool = False) -> list[str]:
    """Pins for the core dependencies and ``extras``, or (``build``) for the build-system requirements."""
    project = pyproject["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise ValueError(f"unknown extras {unknown}; pyproject.toml has {sorted(optional)}")
    if build:
        requirements = list(pyproject.get("build-system", {}).get("requires", []))
    else:
        requirements = list(project.get("dependencies", []))
        for extra in extras:
            requirements += optional[extra]
    pins: dict[str, tuple[str, str | None]] = {}
    for req in requirements:
        name, version, marker = lower_bound(req)
        if name in pins:
            old_version, old_marker = pins[name]
            version = max(version, old_version, key=_version_key)
            marker = marker if marker == old_marker else None
        pins[name] = (version, marker)
    return [f"{name}=={v}" + (f"; {mk}" if mk else "") for name, (v, mk) in sorted(pins.items())]


def _release(version: str) -> tuple:
    """Release numbers without trailing zeros or a local label: "2.13" and "2.13.0+cpu" are equal."""
    parts = [int(p) for p in version.split("+")[0].split(".") if p.isdigit()]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def check_installed(lines: list[str], build_lines: list[str], project: str) -> int:
    """Compare the pins with what the running interpreter has installed; 0 when every one matches.

    A build pin is compared with the generator named in the project's installed wheel (its WHEEL file
    says "Generator: hatchling 1.27.0"), the one trace a build backend leaves.
    """
    try:
        wheel = importlib.metadata.distribution(project).read_text("WHEEL") or ""
    except importlib.metadata.PackageNotFoundError:
        wheel = ""
    generator = dict(line.split(":", 1) for line in wheel.splitlines() if ":" in line).get("Generator", "").split()
    built_by = {normalise(generator[0]): generator[1]} if len(generator) == 2 else {}
    bad = 0
    for line, is_build in [(x, False) for x in lines] + [(x, True) for x in build_lines]:
        pin, _, marker = line.partition(";")
        name, _, wanted = pin.strip().partition("==")
        if is_build:
            have = built_by.get(name)
        else:
            try:
                have = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                have = None
        if have is None and marker:
            status = "not installed (marker)"
        elif have is not None and _release(have) == _release(wanted):
            status = "ok"
        else:
            status, bad = "MISMATCH", bad + 1
        what = f"built {project}" if is_build else "installed"
        print(f"{name:22} pinned {wanted:8} {what} {have or '-':14} {status}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", default=str(Path(__file__).resolve().parent.parent / "pyproject.toml"))
    parser.add_argument("--extras", default="serve,onnx,dev", help="comma-separated extras to include")
    parser.add_argument("--build", action="store_true", help="pin the build-system requirements instead")
    parser.add_argument("--check", action="store_true",
                        help="compare the pins with this interpreter's installed versions")
    parser.add_argument("--output", "-o", default="-", help="file to write ('-': standard output)")
    args = parser.parse_args(argv)
    with open(args.pyproject, "rb") as f:
        pyproject = tomllib.load(f)
    extras = [e.strip() for e in args.extras.split(",") if e.strip()]
    try:
        lines = constraints(pyproject, extras, build=args.build and not args.check)
    except ValueError as exc:
        print(f"{args.pyproject}: {exc}", file=sys.stderr)
        return 1
    if args.check:
        build_lines = constraints(pyproject, [], build=True)
        return check_installed(lines, build_lines, pyproject["project"]["name"])
    text = "# Generated by .ci/lowest_constraints.py from pyproject.toml: each direct dependency at its lower bound.\n"
    text += "\n".join(lines) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
