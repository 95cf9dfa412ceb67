"""The engine is pure (docs/design.md, Architecture): `attribution.domain` imports only an allowlist of modules.

Every file of the package is parsed with `ast` (nothing is imported, so a module-level side effect
cannot hide an import), and every `import`/`from ... import`, including those nested in functions
or `if TYPE_CHECKING:` blocks, and every `__import__`/`importlib` call is checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import attribution.domain

DOMAIN = Path(attribution.domain.__file__).parent
FILES = sorted(DOMAIN.rglob("*.py"))

ALLOWED = {
    "__future__",
    "dataclasses",
    "typing",
    "collections.abc",
    "types",
    "functools",
    "itertools",
    "bisect",
    "operator",
    "enum",
}
#: Spelled out so that the test explains itself when it fails; all are outside the allowlist anyway.
FORBIDDEN = {
    "faust", "mode", "aiokafka", "kafka", "json", "orjson", "time", "datetime", "random", "os", "asyncio",
    "socket", "fastjsonschema", "attribution.contract", "attribution.streaming", "attribution.settings",
}  # fmt: skip


def imported_modules(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name in {"__import__", "importlib.import_module", "import_module"}:
                found.append((node.lineno, f"<dynamic import: {ast.unparse(node)}>"))
    return found


def package_of(path: Path) -> str:
    parts = path.relative_to(DOMAIN).parent.parts
    return ".".join(("attribution", "domain", *parts))


def allowed(module: str) -> bool:
    return module in ALLOWED or module == "attribution.domain" or module.startswith("attribution.domain.")


def test_the_domain_package_has_the_expected_modules() -> None:
    assert {f.name for f in FILES} >= {"__init__.py", "config.py", "engine.py", "outputs.py", "records.py", "state.py"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_a_domain_module_imports_only_the_standard_librarys_pure_modules_and_the_domain(path: Path) -> None:
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))

    found = imported_modules(tree, package_of(path))

    assert [f"{path.name}:{line}: {module}" for line, module in found if not allowed(module)] == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_a_domain_module_names_no_clock_randomness_or_io_builtin(path: Path) -> None:
    tree = ast.parse(path.read_text("utf-8"))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}

    assert names.isdisjoint({"open", "print", "input", "eval", "exec", "globals", "__import__"})


@pytest.mark.parametrize(
    "source",
    [
        "import json",
        "import os.path",
        "from time import monotonic",
        "from datetime import datetime",
        "import faust",
        "from attribution.contract import decode",
        "from .. import settings",
        "def f():\n    import random",
        "if TYPE_CHECKING:\n    import orjson",
        "importlib.import_module('kafka')",
    ],
)
def test_the_checker_itself_catches_a_forbidden_import(source: str) -> None:
    found = imported_modules(ast.parse(source), "attribution.domain")

    assert found
    assert not all(allowed(module) for _, module in found)


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_every_named_forbidden_module_is_outside_the_allowlist(module: str) -> None:
    assert not allowed(module)


@pytest.mark.parametrize(
    "source", ["from . import config", "from .state import Limits", "from attribution.domain.records import Touch"]
)
def test_imports_within_the_domain_are_allowed(source: str) -> None:
    assert all(allowed(module) for _, module in imported_modules(ast.parse(source), "attribution.domain"))
