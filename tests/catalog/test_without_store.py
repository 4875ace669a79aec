"""The catalog layer reads and validates without a store: importers return a catalog and write nothing, and no
module of core.catalog imports core.store (the store writes what they return, through core.workspace.imports)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core.catalog.interactions import merge_interactions
from core.catalog.manifest import manifest_catalog_name, manifest_source, read_manifest_source
from core.catalog.validation import check_target
from core.errors import StoreError
from tests.catalog.test_manifest import make_catalog_folder, zip_folder

CATALOG = Path(__file__).resolve().parents[2] / "core" / "catalog"


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_no_catalog_module_imports_the_store() -> None:
    imported = {}
    for path in CATALOG.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            imported.update({f"{path.name}: {n}": n for n in names if n.startswith("core.store")})
    assert not imported, f"core.catalog imports the store: {sorted(imported)}"


def test_a_zip_is_read_into_the_scratch_folder_and_nothing_else_is_written(tmp_path: Path) -> None:
    folder = make_catalog_folder(tmp_path / "src")
    archive = zip_folder(folder, tmp_path / "Shop Items.zip")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    before = _files(tmp_path)
    source, is_zip = manifest_source(archive)
    name = manifest_catalog_name(source, is_zip, None)
    catalog, media, warnings, problems = read_manifest_source(source, is_zip, name, scratch)
    assert (source, is_zip, name) == (archive, True, "Shop-Items")
    assert len(catalog.items) == 4 and catalog.metadata["source"] == "manifest" and not problems
    assert set(media) == {ref for it in catalog.items for ref in (it.image, it.audio) if ref}
    new = _files(tmp_path) - before
    assert new and all(p.is_relative_to(scratch) for p in new)  # the unpacked entries, nowhere else
    assert all(p.is_relative_to(scratch) and p.is_file() for p in media.values())


def test_a_folder_is_read_in_place(tmp_path: Path) -> None:
    folder = make_catalog_folder(tmp_path / "src")
    before = _files(tmp_path)
    source, is_zip = manifest_source(folder / "manifest.csv")  # the manifest itself names its folder
    catalog, media, _, _ = read_manifest_source(source, is_zip, "shop", tmp_path / "unused")
    assert (source, is_zip) == (folder, False) and _files(tmp_path) == before
    assert all(p.is_relative_to(folder) for p in media.values())


def test_the_name_check_asks_for_the_stored_names_only_when_needed() -> None:
    asked = []

    def names() -> list[str]:
        asked.append(1)
        return ["Shop", "music"]

    with pytest.raises(StoreError, match="belongs to the built-in demo catalog"):
        check_target("Demo", True, names)
    assert not asked  # a reserved name is refused before the store is read
    with pytest.raises(StoreError, match="differs from the stored catalog 'Shop' only in case"):
        check_target("shop", True, names)
    with pytest.raises(StoreError, match="a catalog named 'music' exists already"):
        check_target("music", False, names)
    check_target("music", True, names)
    check_target("films", False, names)
    assert len(asked) == 4


def test_interactions_merge_without_writing(tmp_path: Path) -> None:
    from core.catalog.model import Catalog, Item, empty_interactions

    catalog = Catalog(name="c", items=[Item(id=i, title=i, text="t") for i in ("a", "b")],
                      interactions=empty_interactions())
    csv = tmp_path / "inter.csv"
    csv.write_text("user_id,item_id\nu1,a\nu2,b\n", encoding="utf-8")
    combined, warnings = merge_interactions(catalog, csv)
    assert list(combined["item_id"]) == ["a", "b"] and not warnings
    catalog.interactions = combined
    csv.write_text("user_id,item_id,split\nu3,a,train\n", encoding="utf-8")
    both, warnings = merge_interactions(catalog, csv, replace=False)
    assert list(both["user_id"]) == ["u1", "u2", "u3"]
    assert warnings == ["2 of 3 interactions have no split label; models split unlabelled catalogs themselves, "
                        "so label all rows or none"]
