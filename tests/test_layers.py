"""The code keeps its own rules: modules use each other's public names only, nothing but the unit of work
commits or rolls back, and (in `make test`) import-linter checks the layers of `.importlinter`."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

SHOP = Path(__file__).resolve().parents[1] / "shop"


def _modules():
    for path in sorted(SHOP.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _shop_aliases(tree: ast.Module) -> set[str]:
    """Names bound to modules of the shop by `from . import x` / `from ..pkg import services as y`."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("shop")):
            for name in node.names:
                aliases.add(name.asname or name.name)
    return aliases


def test_modules_use_each_others_public_names_only():
    found = []
    for path, tree in _modules():
        aliases = _shop_aliases(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("shop")):
                found += [f"{path.relative_to(SHOP)}:{node.lineno} imports {n.name}" for n in node.names
                          if n.name.startswith("_") and not n.name.startswith("__")]
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases \
                    and node.attr.startswith("_") and not node.attr.startswith("__"):
                found.append(f"{path.relative_to(SHOP)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not found, found


def test_only_the_unit_of_work_commits_or_rolls_back():
    found = []
    for path, tree in _modules():
        if path.name == "unit_of_work.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("commit", "rollback") \
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "session":
                found.append(f"{path.relative_to(SHOP)}:{node.lineno} {node.attr}")
    assert not found, found


def test_the_import_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (make test installs it)")
    result = subprocess.run([str(lint)], cwd=SHOP.parent, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
