"""The command line through `main([...])`: exit codes, what it prints, and the command registry."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import core.workspace.prepare
from core.cli import main as cli
from core.cli.main import main, register_command
from core.encoders.embeddings import EmbeddingSet
from core.store.database import Store
from tests.catalog.test_manifest import N_ITEMS, make_catalog_folder
from tests.catalog.test_mmrec import make_mmrec


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_info_on_an_empty_store(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "info")
    assert code == 0
    assert f"store: {data_dir}" in out and "no catalogs stored yet" in out


def test_import_manifest_then_info(capsys: pytest.CaptureFixture[str], tmp_path: Path, data_dir: Path) -> None:
    folder = make_catalog_folder(tmp_path / "songs")
    code, out, err = run(capsys, "import", "manifest", str(folder), "--name", "songs", "--data-dir", str(data_dir))
    assert code == 0, err
    assert "imported catalog 'songs'" in out and f"items {N_ITEMS}" in out and "audio 3" in out
    code, out, _ = run(capsys, "info", "--data-dir", str(data_dir))
    assert code == 0
    assert "catalog songs (manifest)" in out and "interactions 4" in out
    assert "embeddings: none" in out and "runs: 0" in out


def test_info_json(capsys: pytest.CaptureFixture[str], tmp_path: Path, data_dir: Path) -> None:
    assert main(["--data-dir", str(data_dir), "import", "mmrec", str(make_mmrec(tmp_path / "tiny"))]) == 0
    Store(data_dir).save_run({"catalog": "tiny", "name": "popularity"})
    capsys.readouterr()
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "info", "--catalog", "tiny", "--json")
    assert code == 0
    summary = json.loads(out)["catalogs"][0]
    assert (summary["name"], summary["items"], summary["users"], summary["runs"]) == ("tiny", 4, 3, 1)
    assert summary["splits"] == {"train": 4, "valid": 1, "test": 2}
    assert summary["features"] == {"text": "precomputed:all-MiniLM-L6-v2.npy", "audio": "precomputed:vggish.npy"}


def test_import_mmrec_options(capsys: pytest.CaptureFixture[str], tmp_path: Path, data_dir: Path) -> None:
    folder = make_mmrec(tmp_path / "tiny")
    code, out, err = run(capsys, "--data-dir", str(data_dir), "import", "mmrec", str(folder), "--audio", "whisper",
                         "--text", "none", "--name", "w")
    assert code == 0, err
    assert "audio <- precomputed:whisper.npy" in out and "text <-" not in out


def test_import_mmrec_with_metadata(capsys: pytest.CaptureFixture[str], tmp_path: Path, data_dir: Path) -> None:
    folder = make_mmrec(tmp_path / "tiny")
    (folder / "genres.tsv").write_text("artistID\tgenre\n80\trock\n66\tpop\n59\trock\n7\tjazz\n")
    code, out, err = run(capsys, "--data-dir", str(data_dir), "import", "mmrec", str(folder), "--metadata",
                         "genres.tsv:genre")
    assert code == 0, err
    assert "item metadata genre read for 4 of 4 items" in out
    assert [it.metadata["genre"] for it in Store(data_dir).load_catalog("tiny").items] == ["rock", "pop", "rock",
                                                                                           "jazz"]


def test_bad_input_exits_2_with_the_reason(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           data_dir: Path) -> None:
    folder = make_catalog_folder(tmp_path / "songs")
    (folder / "covers/t1.png").write_bytes(b"not an image")
    code, out, err = run(capsys, "--data-dir", str(data_dir), "import", "manifest", str(folder), "--strict")
    assert code == 2 and out == ""
    last = err.strip().splitlines()[-1]  # progress lines (not a terminal) come before it
    assert last.startswith("error: ") and "row 3, column image" in last
    assert Store(data_dir).list_catalogs().empty


def test_unusable_media_cells_are_masked_and_listed(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                    data_dir: Path) -> None:
    folder = make_catalog_folder(tmp_path / "songs")
    (folder / "covers/t1.png").write_bytes(b"not an image")
    code, out, err = run(capsys, "--data-dir", str(data_dir), "import", "manifest", str(folder))
    assert code == 0, err
    assert "masked media cells (1" in out
    assert "manifest.csv row 3, column image, covers/t1.png:" in out
    catalog = Store(data_dir).load_catalog("songs")
    assert catalog.items[1].image is None and catalog.items[0].image == "covers/t0.png"
    assert catalog.metadata["import_problems"][0]["row"] == "row 3"
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "info", "--catalog", "songs")
    assert code == 0
    assert "masked media cells (1;" in out and "manifest.csv row 3, column image, covers/t1.png:" in out
    assert "model: none trained (run `python -m core train --catalog songs`" in out


def test_a_catalog_without_a_split_says_no_split(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                  data_dir: Path) -> None:
    folder = make_mmrec(tmp_path / "tiny", extras=False)
    inter = folder / "tiny.inter"
    inter.write_text("\n".join(",".join(line.split("\t")[:3]).replace(",", "\t")
                               for line in inter.read_text().splitlines()) + "\n")  # no x_label column
    code, out, err = run(capsys, "--data-dir", str(data_dir), "import", "mmrec", str(folder))
    assert code == 0, err
    assert "splits: no split" in out and "train 0" not in out and "none 7" not in out
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "info")
    assert "splits: no split" in out and "train 0" not in out
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "import", "mmrec", str(make_mmrec(tmp_path / "split")),
                       "--name", "split")
    assert "splits: train 4, valid 1, test 2" in out


def test_import_interactions(capsys: pytest.CaptureFixture[str], tmp_path: Path, data_dir: Path) -> None:
    assert main(["--data-dir", str(data_dir), "import", "manifest", str(make_catalog_folder(tmp_path / "s"))]) == 0
    csv = tmp_path / "more.csv"
    csv.write_text("user_id,item_id\nu7,t0\nu8,t3\n")
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "import", "interactions", str(csv), "--catalog", "s")
    assert code == 0 and "interactions 2" in out
    csv.write_text("user_id,item_id\nu7,t99\n")
    code, _, err = run(capsys, "--data-dir", str(data_dir), "import", "interactions", str(csv), "--catalog", "s")
    assert code == 2 and "'t99'" in err
    assert len(Store(data_dir).load_catalog("s").interactions) == 2


@pytest.mark.parametrize("argv, fragment", [
    ((), "usage"),
    (("import",), "import"),
    (("import", "interactions", "x.csv"), "--catalog"),
    (("nonsense",), "invalid choice"),
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], data_dir: Path, argv: tuple[str, ...],
                             fragment: str) -> None:
    code, _, err = run(capsys, "--data-dir", str(data_dir), *argv)
    assert code == 2 and fragment in err


def test_unknown_catalog_exits_2(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    code, _, err = run(capsys, "--data-dir", str(data_dir), "encode", "--catalog", "nope")
    assert code == 2 and "no catalog named 'nope'" in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and all(name in out for name in ("demo", "import", "encode", "info"))


def test_registered_commands_run_and_unexpected_errors_exit_1(capsys: pytest.CaptureFixture[str],
                                                              data_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMANDS", dict(cli.COMMANDS))  # keep the registry as it was after the test

    def add(p):
        p.add_argument("--fail", action="store_true")

    def go(args, store):
        if args.fail:
            raise RuntimeError("boom")
        print(f"hello from {store.root.name}")
        return 0

    register_command("hello", "say hello", add, go)
    assert run(capsys, "--data-dir", str(data_dir), "hello")[:2] == (0, "hello from store\n")
    code, _, err = run(capsys, "--data-dir", str(data_dir), "hello", "--fail")
    assert code == 1 and "unexpected error: RuntimeError: boom" in err and "Traceback" in err


def test_encode_reports_the_fields(capsys: pytest.CaptureFixture[str], tmp_path: Path, data_dir: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["--data-dir", str(data_dir), "import", "mmrec", str(make_mmrec(tmp_path / "tiny"))]) == 0
    seen = {}

    def fake_prepare(store, catalog, encoders=None, progress=None, force=False):
        seen.update(catalog=catalog.name, force=force)
        progress(0, 8, "text: 0/4 items encoded")
        progress(8, 8, "text: 4/4 items encoded")
        n = len(catalog.items)
        return EmbeddingSet(item_ids=catalog.item_ids, matrices={"text": np.ones((n, 6), np.float32)},
                            masks={"text": np.ones(n, bool)}, modality_of={"text": "text"},
                            encoder_ids={"text": "precomputed:all-MiniLM-L6-v2.npy"})

    monkeypatch.setattr(core.workspace.prepare, "prepare_embeddings", fake_prepare)
    capsys.readouterr()
    code, out, err = run(capsys, "--data-dir", str(data_dir), "encode", "--catalog", "tiny", "--force")
    assert code == 0 and seen == {"catalog": "tiny", "force": True}
    assert "text" in out and "6-d" in out and "4/4 items" in out
    lines = [line for line in err.splitlines() if "8/8" in line]  # stderr is a log here, not a terminal
    assert len(lines) == 1 and "text: 4/4 items encoded" in lines[0], err


def test_demo_builds_the_catalog(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    code, out, err = run(capsys, "--data-dir", str(data_dir), "demo", "--tracks", "6", "--listeners", "4",
                         "--seed", "3", "--no-encode")
    assert code == 0, err
    assert "6 tracks" in out and "seed 3" in out
    catalog = Store(data_dir).load_catalog("demo")
    assert len(catalog.items) == 6 and catalog.metadata["seed"] == 3


def test_train_saves_an_active_model_and_models_lists_it(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                         data_dir: Path) -> None:
    assert main(["--data-dir", str(data_dir), "import", "mmrec", str(make_mmrec(tmp_path / "tiny"))]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "--data-dir", str(data_dir), "train", "--catalog", "tiny",
                         "--set", "strategy=weighted", "--set", "epochs=2", "--set", "negatives=2",
                         "--budget", "0.05")
    assert code == 0, err
    assert "weighted" in out and "active" in out and "precomputed:all-MiniLM-L6-v2.npy" in out
    models = Store(data_dir).list_models("tiny")
    assert len(models) == 1 and bool(models["active"].iloc[0])
    config = json.loads(models["config"].iloc[0])
    assert config["strategy"] == "weighted" and config["epochs"] == 2
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "models", "list")
    assert code == 0 and models["id"].iloc[0] in out
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "models", "activate", models["id"].iloc[0])
    assert code == 0 and "now the active model of 'tiny'" in out


@pytest.mark.parametrize(("argv", "message"), [
    (("train", "--catalog", "tiny", "--set", "strategy"), "write NAME=VALUE"),
    (("train", "--catalog", "tiny", "--set", "colour=red"), "has no setting 'colour'"),
    (("train", "--catalog", "tiny", "--set", "als.factors=8"), "fusion settings only"),
    (("train", "--catalog", "tiny", "--set", "epochs=many"), "epochs takes a whole number"),
    (("train", "--catalog", "tiny", "--set", "strategy=magic"), "choose one of"),
    (("train", "--catalog", "tiny", "--budget", "0"), "argument --budget: takes a number above 0"),
    (("models", "activate", "no-such-model"), "no saved model 'no-such-model'"),
])
def test_train_and_models_refuse_bad_settings(capsys: pytest.CaptureFixture[str], data_dir: Path,
                                              argv: tuple[str, ...], message: str) -> None:
    code, _, err = run(capsys, "--data-dir", str(data_dir), *argv)
    assert code == 2 and message in err
    assert Store(data_dir).list_models().empty  # nothing was saved


@pytest.mark.slow
def test_demo_builds_encodes_and_trains_so_a_report_follows(capsys: pytest.CaptureFixture[str],
                                                            data_dir: Path) -> None:
    """`demo` leaves an active model behind: `report --catalog demo` works right after it."""
    code, out, err = run(capsys, "--data-dir", str(data_dir), "demo", "--tracks", "6", "--listeners", "4")
    assert code == 0, err
    assert "trained and active" in out
    active = Store(data_dir).active_model("demo")
    assert active is not None and "demo" in active["id"]
    code, out, err = run(capsys, "--data-dir", str(data_dir), "report", "--catalog", "demo", "--explain", "1",
                         "--out", str(data_dir / "report.html"))
    assert code == 0, err
    assert "6 ranked items, 1 explained" in out and (data_dir / "report.html").stat().st_size > 0


HELP_PATHS = [(), *[(name,) for name in cli.COMMANDS],
              *[(group, action) for group, actions in (("import", ("manifest", "mmrec", "interactions")),
                                                       ("runs", ("list", "show", "compare", "delete")),
                                                       ("models", ("list", "activate"))) for action in actions]]


@pytest.mark.parametrize("path", HELP_PATHS, ids=lambda p: " ".join(p) or "top")
def test_every_command_prints_its_help(capsys: pytest.CaptureFixture[str], path: tuple[str, ...]) -> None:
    code, out, err = run(capsys, *path, "--help")
    assert code == 0 and out.startswith(f"usage: python -m core {' '.join(path)}".rstrip()) and not err


def test_the_commands_are_listed_in_their_groups_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(cli.COMMANDS) == ["demo", "import", "encode", "info", "evaluate", "runs", "train", "models",
                                  "explain-check", "report", "tune", "history", "restore", "warm"]
    code, out, _ = run(capsys, "--help")
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("    ") and not line.startswith("     ")]
    assert code == 0 and listed == list(cli.COMMANDS)


def test_only_the_command_line_imports_it() -> None:
    import ast

    root = Path(__file__).resolve().parents[2]
    found = []
    for path in [*(root / "core").rglob("*.py"), *(root / "ui").rglob("*.py"), *(root / "pages").rglob("*.py")]:
        if path.is_relative_to(root / "core" / "cli") or path == root / "core" / "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            found += [f"{path.relative_to(root)}: {n}" for n in names if n == "core.cli" or n.startswith("core.cli.")]
    assert not found, found
