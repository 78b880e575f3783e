"""The layout is the architecture: imports run one way, and state lives in objects.

    cli -> daemon -> telling -> pipeline -> folder / wistia -> ledger -> config -> core

Each package may import only itself and what stands to its right (folder and wistia not each
other); `logs` and `redact` serve everyone and import only `core`; the sandbox is a program of
its own and imports nothing of ingestd.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "ingestd"
ORDER = ["core", "config", "ledger", "folder", "wistia", "pipeline", "telling", "daemon", "cli"]
RANK = {name: n for n, name in enumerate(ORDER)}
RANK["wistia"] = RANK["folder"]  # side by side
SHARED = {"logs", "redact", "__init__"}


def _package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "ingestd":  # modules (logs, redact) or the root's __version__
                found += [
                    (node.lineno, f"ingestd.{a.name}" if _is_module(a.name) else "ingestd")
                    for a in node.names
                ]
            elif node.module.startswith("ingestd."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("ingestd.")]
    return found


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name).is_dir()


def _name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(relative.parts)


def _allowed(importer: str, imported: str) -> bool:
    mine, theirs = _package_of(importer), _package_of(imported)
    if mine == "__main__":
        return theirs == "cli"
    if imported == "ingestd":
        return True  # __version__
    if mine == "sandbox":
        return theirs == "sandbox"
    if theirs == "sandbox":
        return mine == "cli"  # `ingestd sandbox` and `run --sandbox` start it
    if mine in SHARED:
        return theirs in ("core", "redact", "__init__")
    if theirs in SHARED:
        return True
    if mine == theirs:
        return True
    if {mine, theirs} == {"folder", "wistia"}:
        return False
    return RANK[theirs] <= RANK[mine]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: _name(p))
def test_imports_run_one_way(path: Path) -> None:
    importer = _name(path)
    wrong = [
        f"line {line}: {importer} imports {imported}"
        for line, imported in _imports(path)
        if not _allowed(importer, imported)
    ]
    assert not wrong, "\n".join(wrong)


def test_every_package_says_what_it_owns_and_what_it_does_not() -> None:
    for init in sorted(PACKAGE.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "not" in doc and len(doc) > 200, f"{init.relative_to(PACKAGE)}: {doc[:80]!r}"
