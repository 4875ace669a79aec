"""The serving layer's shape: small modules and classes, and imports that only point down the house's layers
(catalog, store, encoders, data, models below serving; nothing above it, and never streamlit)."""
from __future__ import annotations

import ast
from pathlib import Path

from core.store.paths import REPO_ROOT

SERVING = REPO_ROOT / "core" / "serving"
ABOVE = ("core.explain", "core.evaluation", "core.scale", "core.workspace", "core.report", "core.tour", "core.cli",
         "core.tuning", "ui", "pages", "app", "benchmarks", "streamlit")


def modules() -> list[Path]:
    return sorted(SERVING.rglob("*.py"))


def test_no_serving_module_over_600_lines_and_no_class_over_300():
    for path in modules():
        lines = path.read_text().count("\n")
        assert lines <= 600, f"{path.relative_to(REPO_ROOT)} has {lines} lines"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                size = node.end_lineno - node.lineno + 1
                assert size <= 300, f"{path.relative_to(REPO_ROOT)}: class {node.name} has {size} lines"


def test_serving_imports_only_point_down_the_layers():
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                above = [a for a in ABOVE if name == a or name.startswith(a + ".")]
                assert not above, f"{path.relative_to(REPO_ROOT)} imports {name}, above the serving layer"
