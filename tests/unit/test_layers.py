"""The packages depend on each other in one direction: adapters on the application layer, never
the other way, and the streaming and web sides of the worker not on each other.

Every module is parsed with `ast` (nothing is imported), and every import, including those nested
in functions or `if TYPE_CHECKING:` blocks, is checked. `attribution.worker` is the one module
that puts the streaming and web sides together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import attribution

ROOT = Path(attribution.__file__).parent

#: package -> packages (or modules) it must never import
FORBIDDEN = {
    "app": ("attribution.streaming", "attribution.web", "attribution.cli", "attribution.kafka", "attribution.worker",
            "faust", "aiokafka", "aiohttp", "click"),
    "web": ("attribution.streaming", "attribution.cli", "attribution.worker"),
    "kafka": ("attribution.streaming", "attribution.web", "attribution.cli", "attribution.worker"),
    "streaming": ("attribution.web", "attribution.cli", "attribution.worker"),
    "contract": ("attribution.app", "attribution.streaming", "attribution.web", "attribution.cli"),
}  # fmt: skip


def imports(path: Path) -> list[tuple[int, str]]:
    return imports_in(path.read_text(), ".".join(("attribution", *path.relative_to(ROOT).parent.parts)))


def imports_in(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, a module of `package`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                found.append((node.lineno, f"{base}.{node.module}" if node.module else base))
            else:
                found.append((node.lineno, node.module or ""))
    return found


CASES = [(layer, path) for layer in FORBIDDEN for path in sorted((ROOT / layer).rglob("*.py"))]


@pytest.mark.parametrize(("layer", "path"), CASES, ids=[str(p.relative_to(ROOT)) for _, p in CASES])
def test_a_package_never_imports_the_layers_above_or_beside_it(layer: str, path: Path) -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for line, module in imports(path)
        for banned in FORBIDDEN[layer]
        if module == banned or module.startswith(banned + ".")
    ]
    assert bad == []


def test_the_check_sees_nested_and_relative_imports() -> None:
    source = "def f():\n    from attribution.streaming import app\n\nfrom ..web import api\n"
    assert imports_in(source, "attribution.app") == [(4, "attribution.web"), (2, "attribution.streaming")]
