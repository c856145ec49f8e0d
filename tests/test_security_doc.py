"""docs/security.md has a row for every route of the app (method + path, as Flask spells the
rule), no row for a route the app lacks, and every test it names exists."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "security.md"
ROUTE = re.compile(r"^`(GET|POST|PUT|PATCH|DELETE) (/[^`]*)`$")
TEST = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def table() -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(method, rule) -> the tests its row names."""
    rows: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = ROUTE.match(cells[0]) if len(cells) == 4 else None
        if match:
            key = (match.group(1), match.group(2))
            assert key not in rows, f"two rows for {key}"
            rows[key] = TEST.findall(cells[3])
    return rows


@cache
def functions(path: str) -> frozenset[str]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return frozenset(node.name for node in ast.walk(tree)
                     if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))


def test_every_route_has_a_row_and_every_row_a_route(app_factory):
    app = app_factory.create()
    routes = {(method, rule.rule) for rule in app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    rows = set(table())

    assert sorted(routes - rows) == [], "routes missing from docs/security.md"
    assert sorted(rows - routes) == [], "rows for routes the app does not have"


def test_every_row_names_a_test_that_exists():
    rows = table()
    assert len(rows) > 25
    for route, tests in rows.items():
        assert tests, f"{route}: no test named"
        for path, name in tests:
            assert (ROOT / path).is_file(), (route, path)
            assert name in functions(path), (route, f"{path}::{name}")


def test_every_test_the_prose_names_exists_too():
    for path, name in TEST.findall(DOC.read_text(encoding="utf-8")):
        assert name in functions(path), f"{path}::{name}"
