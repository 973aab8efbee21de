"""Imports flow downwards only: each hmslib module may import only the modules listed before it.

The order below is the package's layering, from the data contracts at the bottom to the command line
at the top. Every import is checked, including the lazy ones inside functions, so no import circle
can come back (MNE-Python's ``test_import_nesting.py`` is the model).
"""

from __future__ import annotations

import ast
from pathlib import Path

import hmslib

#: The layers, bottom first. A module may import any module above it in this list, never below.
ORDER: tuple[str, ...] = (
    "hmslib",
    "constants",
    "_checks",
    "metrics",
    "labels",
    "io",
    "signal",
    "spectral",
    "representations",
    "recording",
    "synthetic.scalp",
    "synthetic.raters",
    "synthetic.patterns",
    "synthetic.cohort",
    "synthetic.render",
    "synthetic.writer",
    "synthetic.realism",
    "synthetic",
    "cache",
    "augment",
    "datasets",
    "weights",
    "models",
    "losses",
    "config",
    "checkpoints",
    "analysis",
    "calibration",
    "ensemble",
    "eda",
    "viz",
    "predict",
    "scoring",
    "train",
    "report",
    "pipeline",
    "bundle",
    "export",
    "cli",
)


def _module_name(path: Path, root: Path) -> str:
    """``hmslib/synthetic/render.py`` -> ``synthetic.render``; a package's ``__init__`` -> its name."""
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or root.name


def _imported(tree: ast.AST, package: str) -> set[str]:
    """Names (relative to ``package``) of the package modules a module imports, anywhere in it."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from hmslib import io`` imports the module hmslib.io
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == package:
                found.add(package)
            elif name.startswith(package + "."):
                found.add(name[len(package) + 1 :])
    return found


def nesting_violations(root: Path, order: tuple[str, ...]) -> list[str]:
    """Every import of a module at or above the importing one in ``order``, and unlisted modules.

    Parameters
    ----------
    root : pathlib.Path
        The package folder.
    order : tuple of str
        Module names relative to the package, bottom first; the package itself is ``root.name``.

    Returns
    -------
    list of str
        One line per problem, e.g. ``"io imports recording (layer 9 >= 5)"``.
    """
    package = root.name
    rank = {name: i for i, name in enumerate(order)}
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        if module not in rank:
            problems.append(f"{module} is not in the declared order")
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = set()
        for name in _imported(tree, package):
            # ``from hmslib.synthetic import generate`` names a function, not a module
            while name not in rank and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in rank:
                targets.add(name)
        for target in sorted(targets, key=rank.get):
            if target != module and rank[target] >= rank[module]:
                problems.append(
                    f"{module} imports {target} (layer {rank[target]} >= {rank[module]})"
                )
    return problems


def test_every_import_flows_downwards():
    root = Path(hmslib.__file__).parent
    assert nesting_violations(root, ORDER) == []


def test_every_module_is_in_the_order():
    root = Path(hmslib.__file__).parent
    modules = {_module_name(p, root) for p in root.rglob("*.py")}
    assert modules == set(ORDER)


def test_the_checker_catches_an_upward_import(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("import numpy\n")
    (pkg / "high.py").write_text("from pkg import low\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "leaf.py").write_text("from pkg.high import thing\n")
    order = ("pkg", "low", "high", "sub.leaf", "sub")
    assert nesting_violations(pkg, order) == []
    # a lazy upward import inside a function is caught too
    (pkg / "low.py").write_text("def f():\n    from pkg.high import thing\n    return thing\n")
    assert nesting_violations(pkg, order) == ["low imports high (layer 2 >= 1)"]
    (pkg / "stray.py").write_text("")
    assert "stray is not in the declared order" in nesting_violations(pkg, order)
