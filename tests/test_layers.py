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


def _contract_layers() -> list[list[str]]:
    import configparser

    config = configparser.ConfigParser()
    config.read(SHOP.parent / ".importlinter", encoding="utf-8")
    rows = [line.strip() for line in config["importlinter:contract:layers"]["layers"].splitlines() if line.strip()]
    return [[name.strip() for name in row.replace(":", "|").split("|")] for row in rows]


def test_every_module_of_the_shop_has_its_place_in_the_layers():
    """A module left out of `.importlinter` would be unconstrained: it could import anything, and anything it."""
    placed = {name for row in _contract_layers() for name in row}
    unplaced = []
    for path in sorted(SHOP.rglob("*.py")):
        parts = path.relative_to(SHOP.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name == "shop" or (path.name == "__init__.py" and not any(
                isinstance(node, (ast.Import, ast.ImportFrom)) for node in ast.parse(path.read_text("utf-8")).body)):
            continue  # the root, and a domain's package, which holds only its docstring
        if not any(name == p or name.startswith(p + ".") for p in placed):
            unplaced.append(name)
    assert not unplaced, f"place these in .importlinter: {unplaced}"


def test_the_readme_names_the_layers_in_the_contracts_order():
    """The README's layer order and the contract's say the same: the domains, bottom to top."""
    readme = (SHOP.parent / "README.md").read_text(encoding="utf-8")
    said = readme.split("**Layers**", 1)[1].split("\n\n", 1)[0]
    order = []
    for row in reversed(_contract_layers()):
        for name in row:
            parts = name.split(".")
            if len(parts) == 3 and parts[1] not in order and parts[2] in ("models", "services"):
                order.append(parts[1])
    positions = [said.find(f"{domain} →") if f"{domain} →" in said else said.find(f"{domain} ") for domain in order]
    assert -1 not in positions, [d for d, p in zip(order, positions) if p == -1]
    assert positions == sorted(positions), f"the README should name them in this order: {' → '.join(order)}"
