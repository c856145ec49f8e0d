"""Issue #13: the layers are a test. The import-linter contracts in pyproject.toml
(`[tool.importlinter]`) hold for the real tree, each of them fails on a throwaway tree that
breaks it, and `domain/` imports only the standard library (docs/architecture.md, "Layers")."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = {c["id"]: c["name"] for c in CONFIG["contracts"]}


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on `tree` (it puts its working directory first on sys.path)."""
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", "pyproject.toml"],
                          cwd=tree, capture_output=True, text=True, timeout=120, check=False)


def outcomes(output: str) -> dict[str, str]:
    """Each contract's name -> "KEPT" or "BROKEN", from lint-imports' summary lines."""
    found = {}
    for name in CONTRACTS.values():
        for verdict in ("KEPT", "BROKEN"):
            if f"{name} {verdict}" in output:
                found[name] = verdict
    return found


def test_the_layer_contracts_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert outcomes(result.stdout) == dict.fromkeys(CONTRACTS.values(), "KEPT"), result.stdout


# --- each contract can fail -------------------------------------------------------------------

def throwaway_tree(tmp_path: Path, importer: str = "", line: str = "") -> Path:
    """Every root package of the real config, each with an empty `mod.py`, under the real
    pyproject.toml; `importer` (a dotted module) holds `line`. Every root package is there,
    so none is found in the installed project instead."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for package in CONFIG["root_packages"]:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "mod.py").write_text("")
    if importer:
        (tmp_path / Path(*importer.split("."))).with_suffix(".py").write_text(line + "\n")
    return tmp_path


def test_a_tree_that_keeps_the_layers_passes(tmp_path: Path) -> None:
    result = lint_imports(throwaway_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


# One forbidden import each: (case, the contract it breaks, the importing module, its import).
FORBIDDEN = [
    ("domain-imports-app", "domain-is-the-bottom-floor", "domain.deals", "import app.mod"),
    ("domain-imports-xero", "domain-is-the-bottom-floor", "domain.deals", "from xero import mod"),
    ("domain-imports-crm_adapters", "domain-is-the-bottom-floor", "domain.ports", "import crm_adapters.mod"),
    ("domain-imports-sandbox", "domain-is-the-bottom-floor", "domain.crm", "import sandbox.mod"),
    ("xero-imports-app", "vendors-below-app", "xero.client", "from app.mod import Settings"),
    ("xero-imports-app-inside-a-function", "vendors-below-app", "xero.client",
     "def f():\n    from app import mod"),
    ("crm_adapters-imports-sandbox", "vendors-below-app", "crm_adapters.hubspot", "import sandbox.mod"),
    ("crm_adapters-imports-bench", "vendors-below-app", "crm_adapters.base", "import bench.mod"),
    ("xero-imports-tests", "vendors-below-app", "xero.build", "import tests.mod"),
    ("xero-imports-crm_adapters", "vendors-independent", "xero.client", "import crm_adapters.mod"),
    ("crm_adapters-imports-xero", "vendors-independent", "crm_adapters.pipedrive", "from xero import mod"),
]


@pytest.mark.parametrize("contract, importer, line",
                         [pytest.param(*case, id=name) for name, *case in FORBIDDEN])
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, contract: str, importer: str,
                                                line: str) -> None:
    result = lint_imports(throwaway_tree(tmp_path, importer, line))
    assert result.returncode != 0, result.stdout + result.stderr
    broken = {name for name, verdict in outcomes(result.stdout).items() if verdict == "BROKEN"}
    assert broken == {CONTRACTS[contract]}, result.stdout
    assert importer in result.stdout, result.stdout  # the report names the offending module


# --- domain/ imports only the standard library --------------------------------------------------

def foreign_imports(package: Path) -> list[str]:
    """`module: name` for every import in `package` that is neither the standard library nor
    the package itself."""
    allowed = set(sys.stdlib_module_names) | {"__future__", package.name}
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [] if node.level else [node.module or ""]
            else:
                continue
            found += [f"{path.relative_to(package.parent)}: {name}" for name in names
                      if name.split(".")[0] not in allowed]
    return found


def test_domain_imports_only_the_standard_library() -> None:
    assert foreign_imports(ROOT / "domain") == []


def test_a_third_party_import_in_domain_is_found(tmp_path: Path) -> None:
    domain = tmp_path / "domain"
    domain.mkdir()
    (domain / "__init__.py").write_text("from decimal import Decimal\nfrom domain import deals\n")
    (domain / "deals.py").write_text("def f():\n    import flask.json\n")
    assert foreign_imports(domain) == [f"{Path('domain', 'deals.py')}: flask.json"]
