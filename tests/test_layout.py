"""The package's folders follow the pipeline, and imports go one way (README: Development)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lagwatch"
MOST_LINES = 420

# Lower ranks are imported by higher ones, never the other way; one rank holds parts that
# do not import each other (kafka/ and detect/), except the vocabulary's few building blocks.
RANK = {
    "__init__": 0, "status": 0, "text": 0, "patterns": 0, "configtypes": 0, "schemas": 0,
    "records": 0, "model": 0, "heap": 0, "lock": 0,
    "kafka": 1, "detect": 1,
    "store": 2,
    "report": 3,
    "alerting": 4,
    "audit": 4.5, "ha": 4.5,
    "serve": 5,
    "config": 6,
    "pipeline": 7,
    "simulate": 8, "auditor": 8, "daemon": 9,
    "cli": 10,
    "__main__": 11,
}
VOCABULARY = 0


def _part(module: str) -> str:
    """The top-level part of ``lagwatch.x.y``: x (a folder or a module)."""
    name = module.split(".")[1]
    return "__init__" if name == "__version__" else name


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lagwatch"):
            module = node.module or ""
            found |= ({f"lagwatch.{a.name}" for a in node.names} if module == "lagwatch"
                      else {module})
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lagwatch.")}
    return found


def test_every_module_has_its_place_and_imports_only_downwards() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        mine = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        assert mine in RANK, f"lagwatch/{mine}: not placed in the layout (tests/test_layout.py)"
        for imported in sorted(_imports(path)):
            theirs = _part(imported)
            if theirs == mine:
                continue
            upward = RANK[theirs] > RANK[mine]
            sideways = RANK[theirs] == RANK[mine] != VOCABULARY
            if upward or sideways:
                wrong.append(f"{path.relative_to(PACKAGE.parent)} imports {imported}")
    assert wrong == []


def test_no_module_is_too_long_to_read() -> None:
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MOST_LINES}
    assert long == {}
