"""Issue #13: the views import the services and the services never import the views; no view
imports another view's module (what the views share is app/views/common.py). Only the app
factory imports the views, to register their blueprints."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIEWS = ROOT / "app" / "views"
FACTORY = {ROOT / "app" / "__init__.py", ROOT / "app" / "factory.py"}  # create_app


def imported(path: Path) -> set[str]:
    """Every module `path` imports (`from a import b` counts a and a.b)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


def test_no_view_imports_another_views_module():
    for path in VIEWS.glob("*.py"):
        views = {name for name in imported(path)
                 if within(name, "app.views") and not within(name, "app.views.common")}
        assert not views, path.name


def test_no_service_imports_a_view():
    for path in (ROOT / "app").rglob("*.py"):
        if VIEWS in path.parents or path in FACTORY:
            continue
        assert not {name for name in imported(path) if within(name, "app.views")}, path.relative_to(ROOT)
