"""The house's rules (docs/ARCHITECTURE.md), checked on the code itself: every module's imports under core/, ui/,
pages/ and app.py are read with `ast` (imports inside functions too), and each rule names the offending file, line
and import. The layers are declared once, here, in the order the map draws them; a new package must be given its
place in LAYERS before its code can pass."""
from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("core", "ui", "pages", "app.py")  # what the rules read (benchmarks/ and tests/ use the house, outside it)
CIRCLE_SOURCES = (*SOURCES, "benchmarks")  # circles are looked for among the benchmarks too
DOC = REPO / "docs" / "ARCHITECTURE.md"  # the map that draws LAYERS and gives each row its paragraph

# Bottom to top: an import may point down this list or within its own row, never up.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core.errors", "core.limits"),  # foundations: exceptions, option and setting bounds
    ("core.catalog",),  # items, media decoding, validation, importers, the demo generator
    ("core.store",),  # the SQLite store and its files, paths, atomic writes, export, sharing
    ("core.encoders",),  # one encoder a file, factory, pipeline, cache, EmbeddingSet
    ("core.data",),  # train/valid/test InteractionData, ranking metrics
    ("core.models",),  # the fusion network and its training loop, the collaborative term, baselines, registry
    ("core.tuning",),  # search spaces, studies, tuned-settings stores
    ("core.serving",),  # RecommendService and its parts, the vector index
    ("core.explain",),  # ExplainService, the explain check, narration, the 2-D map
    ("core.evaluation",),  # protocol, bootstrap, seeds, verdicts, cold start, retrieval, suites, stored runs
    ("core.scale",),  # Ray Data encoding, Ray Tune, the Ray session
    ("core.workspace",),  # a catalog's embeddings and active model prepared on demand; warm start
    ("core.report",),  # report data, rendering, the plotly figures shared with the pages
    ("core.tour",),  # the presenter tour's file, schema and steps
    ("core.cli", "core.__main__"),  # the command line
    ("ui",),  # Streamlit loaders, state, components, charts
    ("pages", "app"),  # one file a page, and the frame
)
ROOT_PACKAGE = "core"  # core/__init__.py: empty, below everything
OUTSIDE = ("benchmarks", "tests")  # they use the house; nothing in it imports them

# The services are the pages' only door to the models: pages import nothing of core.models, and of core.serving
# only these modules (the service with its query types, and the settings it is tuned with).
FORBIDDEN_IN_PAGES = ("core.models", "core.serving")
SERVICE_DOORS = ("core.serving", "core.serving.service", "core.serving.settings")
PAGE_MODULES = ("pages", "app")

MAX_MODULE_LINES = 600
MAX_CLASS_LINES = 300
SIZE_EXEMPT: dict[str, str] = {}  # "path": "why" (generated data only); none today


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    path: str  # its file, relative to the repository root
    line: int
    target: str  # the imported module, dotted (a name imported from a module resolves to the module)

    def where(self) -> str:
        return f"{self.path}:{self.line} imports {self.target}"


def module_name(path: Path, root: Path) -> str:
    """`core/serving/service.py` -> `core.serving.service`; a package's `__init__.py` -> the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(root: Path, sources: tuple[str, ...] = SOURCES) -> list[Path]:
    """Every Python file the rules read under `root`."""
    files: list[Path] = []
    for name in sources:
        where = root / name
        if where.is_file():
            files.append(where)
        elif where.is_dir():
            files += sorted(p for p in where.rglob("*.py") if "__pycache__" not in p.parts)
    return files


def _resolve(node: ast.ImportFrom, source: str, is_package: bool, modules: set[str]) -> list[str]:
    """The modules an `from X import a, b` reaches: X.a where it is a module of the tree, else X."""
    if node.level:
        package = source.split(".") if is_package else source.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    targets = []
    for alias in node.names:
        sub = f"{base}.{alias.name}" if base else alias.name
        targets.append(sub if sub in modules else base)
    return targets


def read_imports(root: Path, sources: tuple[str, ...] = SOURCES) -> dict[str, list[Import]]:
    """Each module's imports (top level, inside functions and under TYPE_CHECKING alike), in file order."""
    files = source_files(root, sources)
    names = {module_name(p, root): p for p in files}
    result: dict[str, list[Import]] = {}
    for name, path in names.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(root).as_posix()
        found: list[Import] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [Import(name, rel, node.lineno, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = _resolve(node, name, path.name == "__init__.py", set(names))
                found += [Import(name, rel, node.lineno, t) for t in dict.fromkeys(targets)]
        result[name] = sorted(found, key=lambda i: (i.line, i.target))
    return result


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int | None:
    """The row of LAYERS that holds `module` (-1 for the empty root package), or None outside the house."""
    if module == ROOT_PACKAGE:
        return -1
    for i, row in enumerate(LAYERS):
        if any(_within(module, prefix) for prefix in row):
            return i
    return None


def _layer_name(i: int) -> str:
    return "/".join(LAYERS[i]) if i >= 0 else ROOT_PACKAGE


def in_house(module: str) -> bool:
    return module.split(".")[0] in {p.split(".")[0] for row in LAYERS for p in row}


def unplaced_modules(imports: dict[str, list[Import]]) -> list[str]:
    """Modules of the house that no row of LAYERS holds (a new package must be given its place)."""
    return [m for m in sorted(imports) if layer_of(m) is None]


def upward_imports(imports: dict[str, list[Import]]) -> list[str]:
    """Every import that points up the layers, or out of the house into benchmarks/ or tests/."""
    found = []
    for module, items in imports.items():
        here = layer_of(module)
        if here is None:
            continue
        for imp in items:
            if any(_within(imp.target, o) for o in OUTSIDE):
                found.append(f"{imp.where()}: the house never imports {imp.target.split('.')[0]}/")
                continue
            there = layer_of(imp.target) if in_house(imp.target) else None
            if there is not None and there > here:
                found.append(f"{imp.where()}: layer {there} ({_layer_name(there)}) is above layer {here} "
                             f"({_layer_name(here)}); move the shared code down, or pass it in from above")
    return found


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one member: the circles of a graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1:
                    components.append(sorted(members))
    return sorted(components)


def import_circles(imports: dict[str, list[Import]], unit: Callable[[str], str] | None = None) -> list[str]:
    """Each import circle, as its members and the imports that close it; `unit` maps a module to the node
    compared (the module itself by default, or its package)."""
    unit = unit or (lambda module: module)
    edges: dict[str, set[str]] = {}
    why: dict[tuple[str, str], list[Import]] = {}
    for module, items in imports.items():
        for imp in items:
            if imp.target not in imports:
                continue  # outside the tree read (standard library, kept libraries)
            a, b = unit(module), unit(imp.target)
            if a != b:  # within one node: a package's own business (or an __init__ naming itself)
                edges.setdefault(a, set()).add(b)
                why.setdefault((a, b), []).append(imp)
    found = []
    for members in _strongly_connected(edges):
        inside = set(members)
        closing = [imp.where() for a in members for b in sorted(edges.get(a, ())) if b in inside
                   for imp in why[(a, b)]]
        found.append(f"import circle between {', '.join(members)}: " + "; ".join(closing))
    return found


def package_of(module: str) -> str:
    """The package a module counts under at package level: core.<package>, or ui, pages, app."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == ROOT_PACKAGE and len(parts) > 1 else parts[0]


def streamlit_in_core(imports: dict[str, list[Import]]) -> list[str]:
    return [f"{imp.where()}: core/ never imports streamlit; draw it in ui/ or pages/ from the plain data core returns"
            for module, items in imports.items() if _within(module, ROOT_PACKAGE)
            for imp in items if _within(imp.target, "streamlit")]


def pages_past_the_services(imports: dict[str, list[Import]]) -> list[str]:
    """Imports from a page (or app.py) into the models, or into serving past its service."""
    found = []
    for module, items in imports.items():
        if not any(_within(module, p) for p in PAGE_MODULES):
            continue
        for imp in items:
            if any(_within(imp.target, f) for f in FORBIDDEN_IN_PAGES) and imp.target not in SERVICE_DOORS:
                found.append(f"{imp.where()}: pages reach models only through the services "
                             f"({', '.join(SERVICE_DOORS)}) via ui/; ask the service, or give it what the page needs")
    return found


def oversized(root: Path, exempt: dict[str, str] = SIZE_EXEMPT) -> list[str]:
    """Modules over MAX_MODULE_LINES lines and classes over MAX_CLASS_LINES lines, outside the exemptions."""
    found = []
    for path in source_files(root):
        rel = path.relative_to(root).as_posix()
        if rel in exempt:
            continue
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{rel}: {lines} lines, over {MAX_MODULE_LINES}; split it by concern")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                size = node.end_lineno - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    found.append(f"{rel}:{node.lineno} class {node.name}: {size} lines, over {MAX_CLASS_LINES}; "
                                 "give its jobs to small parts it orchestrates")
    return found


def _report(problems: Iterable[str]) -> str:
    problems = list(problems)
    return f"{len(problems)} problem(s):\n" + "\n".join(problems)


# -- the house as it is ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def imports() -> dict[str, list[Import]]:
    return read_imports(REPO)


def test_every_module_has_its_place_in_the_layers(imports) -> None:
    assert not unplaced_modules(imports), _report(f"{m}: no row of LAYERS holds it" for m in unplaced_modules(imports))


def test_no_import_runs_up_the_layers(imports) -> None:
    problems = upward_imports(imports)
    assert not problems, _report(problems)


def test_no_import_circle_between_modules() -> None:
    problems = import_circles(read_imports(REPO, CIRCLE_SOURCES))
    assert not problems, _report(problems)


def test_no_import_circle_between_packages(imports) -> None:
    problems = import_circles(imports, package_of)
    assert not problems, _report(problems)


def test_core_never_imports_streamlit(imports) -> None:
    problems = streamlit_in_core(imports)
    assert not problems, _report(problems)


def test_pages_reach_the_models_only_through_the_services(imports) -> None:
    problems = pages_past_the_services(imports)
    assert not problems, _report(problems)


def test_no_module_over_600_lines_and_no_class_over_300() -> None:
    problems = oversized(REPO)
    assert not problems, _report(problems)


def test_the_map_draws_the_layers_in_this_order_and_gives_each_its_paragraph() -> None:
    """docs/ARCHITECTURE.md numbers the core rows bottom to top as LAYERS does, and names every row's folder."""
    import re

    text = DOC.read_text(encoding="utf-8")
    drawn = {int(n): name for n, name in re.findall(r"^ {1,3}(\d{1,2}) (\w+)(?:/|\.py)", text, re.M)}
    declared = {i + 1: row[0].split(".")[-1] for i, row in enumerate(LAYERS) if row[0].startswith("core.")}
    assert drawn == declared, f"the diagram of {DOC.name} and LAYERS disagree: drawn {drawn}, declared {declared}"
    paragraphs = text[text.index("## One paragraph a folder"):]
    for row in LAYERS:
        for prefix in row:
            if prefix == "core.__main__":
                continue  # `python -m core`, described with core/cli/
            parts = prefix.split(".")
            path = f"{'/'.join(parts)}.py" if (REPO / f"{'/'.join(parts)}.py").is_file() else f"{'/'.join(parts)}/"
            assert f"`{path}`" in paragraphs, f"{DOC.name} has no paragraph naming `{path}` (row of {prefix})"


def test_every_size_exemption_is_a_file_that_exists_with_a_reason() -> None:
    for path, why in SIZE_EXEMPT.items():
        assert (REPO / path).is_file() and why.strip(), f"{path}: an exemption needs a file and a reason"


# -- the checker itself, on a planted tree ------------------------------------------------------------------------
def _plant(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


CLEAN_TREE = {
    "core/__init__.py": "",
    "core/errors.py": "class PrismError(Exception):\n    pass\n",
    "core/catalog/__init__.py": "",
    "core/catalog/model.py": "from core.errors import PrismError\n",
    "core/store/__init__.py": "",
    "core/store/database.py": "from ..catalog import model\nfrom core.catalog.model import PrismError\n",
    "core/serving/__init__.py": "",
    "core/serving/service.py": "import numpy as np\nfrom core.store.database import model\n",
    "ui/__init__.py": "",
    "ui/loaders.py": "import streamlit as st\nfrom core.serving.service import np\n",
    "pages/recommend.py": "import streamlit as st\nfrom ui import loaders\nfrom core.serving.service import np\n",
    "app.py": "import streamlit as st\n",
}


def test_the_checker_finds_nothing_in_a_clean_tree(tmp_path: Path) -> None:
    _plant(tmp_path, CLEAN_TREE)
    found = read_imports(tmp_path)
    assert found["core.store.database"] == [Import("core.store.database", "core/store/database.py", 1,
                                                   "core.catalog.model"),
                                            Import("core.store.database", "core/store/database.py", 2,
                                                   "core.catalog.model")]
    assert found["ui"] == [] and found["app"] == [Import("app", "app.py", 1, "streamlit")]
    assert not unplaced_modules(found) and not upward_imports(found)
    assert not import_circles(found) and not import_circles(found, package_of)
    assert not streamlit_in_core(found) and not pages_past_the_services(found) and not oversized(tmp_path)


def test_the_checker_catches_each_planted_violation(tmp_path: Path) -> None:
    long_class = "class Big:\n" + "    x = 1\n" * 300
    _plant(tmp_path, {
        **CLEAN_TREE,
        "core/catalog/model.py": "from core.errors import PrismError\n\n\ndef late():\n    from core.store import database\n",
        "core/catalog/draw.py": "import streamlit.components.v1 as components\n",
        "core/catalog/bench.py": "from benchmarks.quality import main\n",
        "core/models/__init__.py": "",
        "core/models/fusion.py": long_class,
        "core/models/train.py": "from . import fusion\n" + "\n" * 600,
        "core/gadgets/__init__.py": "",
        "pages/recommend.py": "from core.models.fusion import Big\nfrom core.serving import service\n",
    })
    found = read_imports(tmp_path)
    assert unplaced_modules(found) == ["core.gadgets"]
    assert upward_imports(found) == [
        "core/catalog/bench.py:1 imports benchmarks.quality: the house never imports benchmarks/",
        "core/catalog/model.py:5 imports core.store.database: layer 2 (core.store) is above layer 1 "
        "(core.catalog); move the shared code down, or pass it in from above",
    ]
    assert import_circles(found) == [
        "import circle between core.catalog.model, core.store.database: core/catalog/model.py:5 imports "
        "core.store.database; core/store/database.py:1 imports core.catalog.model; core/store/database.py:2 "
        "imports core.catalog.model"]
    assert [p.split(":")[0] for p in import_circles(found, package_of)] == [
        "import circle between core.catalog, core.store"]
    assert streamlit_in_core(found) == [
        "core/catalog/draw.py:1 imports streamlit.components.v1: core/ never imports streamlit; draw it in ui/ or "
        "pages/ from the plain data core returns"]
    assert [p.split(": ")[0] for p in pages_past_the_services(found)] == [
        "pages/recommend.py:1 imports core.models.fusion"]  # core.serving.service is the door
    assert [p.split(";")[0] for p in oversized(tmp_path)] == [
        "core/models/fusion.py:1 class Big: 301 lines, over 300",
        "core/models/train.py: 601 lines, over 600"]
    assert oversized(tmp_path, exempt={"core/models/fusion.py": "x", "core/models/train.py": "x"}) == []
