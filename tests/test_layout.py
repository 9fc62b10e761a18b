"""The package layout's rules that imports can break: read from every module's source with ast, so an import
inside a function (run only on some path) counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import jdsr_cli

PACKAGE = Path(jdsr_cli.__file__).parent


def imported_modules(source: Path) -> set[str]:
    """Every jdsr_cli module ``source`` imports, anywhere in it (relative imports resolved)."""
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    here = ".".join(source.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    package = here if source.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # ``from jdsr_cli import commands``
    return {name for name in found if name == "jdsr_cli" or name.startswith("jdsr_cli.")}


def imports_into(layer: str, *, from_: str) -> list[str]:
    """'module -> imported' for each import of ``jdsr_cli.<from_>`` by a module of ``jdsr_cli.<layer>``."""
    target = f"jdsr_cli.{from_}"
    return sorted(f"{path.relative_to(PACKAGE)} -> {name}"
                  for path in (PACKAGE / layer).rglob("*.py")
                  for name in imported_modules(path)
                  if name == target or name.startswith(target + "."))


def test_training_imports_nothing_from_commands_or_cli() -> None:
    # training stands on process/, io/, engine/...; the commands and the CLI stand on it, never the reverse
    assert imports_into("training", from_="commands") == []
    assert imports_into("training", from_="cli") == []


def test_process_stands_on_nothing_but_errors() -> None:
    # commands, training and the CLI all import process/: it must not import any of them (nor anything heavy)
    for layer in ("io", "ops", "archs", "checkpoints", "engine", "commands", "training", "cli"):
        assert imports_into("process", from_=layer) == []


def test_the_scan_sees_imports_inside_functions(tmp_path: Path) -> None:
    assert "jdsr_cli.commands.batch" in imported_modules(PACKAGE / "cli" / "batch_cmd.py")


def test_no_private_name_is_imported_across_modules() -> None:
    # a leading underscore means "this module's own": another module that needs it gets a public name instead
    crossing = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jdsr_cli"):
                crossing += [f"{path.relative_to(PACKAGE)}: {node.module}.{alias.name}" for alias in node.names
                             if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert crossing == []
