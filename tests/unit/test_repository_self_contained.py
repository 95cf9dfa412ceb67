"""The repository is self-contained: its contract is docs/design.md, and nothing points outside it.

Every file of the repository (what git would track: the tree minus `.git` and what `.gitignore`
excludes, read without running git, as unit tests run no processes) is searched for references
to documents that are not in it: a design file under another name, section marks of such a file,
sibling directories, absolute paths of a build machine. And docs/design.md names what the code
defines: every topic, every record schema, every pixel setting, every unattributed reason and
every dead-letter code, so the contract cannot silently fall behind the code.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path, PurePosixPath

import pytest

from attribution.contract.schemas import load_schema
from attribution.domain.outputs import REASONS
from attribution.settings import Settings
from attribution.streaming.topics import TABLES, topic_specs

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"
SCHEMAS = ROOT / "schemas"

#: References to files outside the repository. Spelt in pieces so that this file does not match.
OUTSIDE = (
    re.compile(re.escape("DESIGN" + ".md")),
    re.compile("DESIGN" + r"\s*§"),
    re.compile(re.escape(".." + "/shared")),
    re.compile(r"(?<![\w.~-])/" + r"work(?:/|\b)"),
)


def _ignore_patterns() -> list[str]:
    lines = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith(("#", "!"))]


def _ignored(rel: PurePosixPath, is_dir: bool, patterns: list[str]) -> bool:
    for pattern in patterns:
        if pattern.endswith("/") and not is_dir:
            continue
        bare = pattern.strip("/")
        anchored = "/" in bare
        if fnmatch.fnmatch(str(rel) if anchored else rel.name, bare):
            return True
    return False


def repository_files() -> list[PurePosixPath]:
    """The repository's files, relative to its root, without `.git` and what `.gitignore` excludes."""
    patterns = _ignore_patterns()
    found: list[PurePosixPath] = []
    for top, dirs, files in os.walk(ROOT):
        here = PurePosixPath(Path(top).relative_to(ROOT).as_posix())
        dirs[:] = [d for d in dirs if d != ".git" and not _ignored(here / d, True, patterns)]
        found += [here / f for f in files if f != ".git" and not _ignored(here / f, False, patterns)]
    return sorted(found)


def test_the_file_walk_sees_the_tracked_tree_and_skips_what_git_ignores() -> None:
    files = {str(f) for f in repository_files()}
    assert {"README.md", "docs/design.md", "src/attribution/domain/engine.py", "schemas/pixel.schema.json"} <= files
    assert ".ci/run" in files
    assert not any(f.startswith((".venv/", ".git/", ".kafka/", "bench/out/")) or "__pycache__" in f for f in files)


@pytest.mark.parametrize(
    "text",
    [
        "see " + "DESIGN" + ".md",
        "rule order (" + "DESIGN" + " §2.3)",
        "from ." + "./shared/notes",
        "written in /" + "work/main/README",
    ],
)
def test_a_reference_outside_the_repository_is_recognised(text: str) -> None:
    assert any(p.search(text) for p in OUTSIDE)


@pytest.mark.parametrize("text", ["docs/design.md", "src/attribution/cli/worker_cmd.py", "a framework/x", "/workers"])
def test_paths_inside_the_repository_are_not_taken_for_outside_references(text: str) -> None:
    assert not any(p.search(text) for p in OUTSIDE)


def test_no_file_of_the_repository_refers_to_a_document_outside_it() -> None:
    offending = []
    for rel in repository_files():
        try:
            text = (ROOT / rel).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary: nothing to cite
        for n, line in enumerate(text.splitlines(), 1):
            if any(p.search(line) for p in OUTSIDE):
                offending.append(f"{rel}:{n}: {line.strip()}")
    assert not offending, "refer to docs/design.md (or say it in our words) instead:\n" + "\n".join(offending)


@pytest.fixture(scope="module")
def design() -> str:
    assert DESIGN.is_file(), "docs/design.md holds the product's contract"
    return DESIGN.read_text(encoding="utf-8")


def test_the_design_names_every_topic_the_product_creates(design: str) -> None:
    names = [spec.name for spec in topic_specs(Settings())]
    assert names
    assert [n for n in names if f"`{n}`" not in design] == []


def test_the_design_names_the_changelog_of_every_table(design: str) -> None:
    assert [t for t in TABLES if f"-{t}-changelog`" not in design] == []


def test_the_design_names_every_record_schema_by_its_path(design: str) -> None:
    schemas = sorted(p.name for p in SCHEMAS.glob("*.schema.json"))
    assert schemas
    assert [s for s in schemas if f"schemas/{s}" not in design] == []


def test_the_design_describes_every_pixel_setting(design: str) -> None:
    fields = list(load_schema("pixel")["properties"])
    assert [f for f in fields if f"`{f}`" not in design] == []


def test_the_design_names_every_unattributed_reason_and_dead_letter_code(design: str) -> None:
    codes = load_schema("dead_letter")["properties"]["error"]["properties"]["code"]["enum"]
    assert [r for r in (*REASONS, *codes) if f"`{r}`" not in design] == []
