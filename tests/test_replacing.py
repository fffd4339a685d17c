"""Nothing lost: every command that writes a file refuses, at once and in one line, to replace
one that charnext did not write (of that kind), and changes nothing; --force replaces it, and
a file of the same kind is replaced as before (retraining, a new report)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from charnext import api
from charnext.cli.app import app
from charnext.errors import OutputExists
from charnext.storage import replacing
from charnext.storage.checkpoint import load

runner = CliRunner()
TINY = ["--steps", "2", "--precision", "fp32", "--device", "cpu", "--hidden-size", "8", "--num-layers", "1"]
MISSING = "no-such-checkpoint.pt"  # what loads it would fail on: the refusal must come first
# a text that is nobody's checkpoint, with bytes a careless write would not reproduce
TEXT = "Lines of someone's novel, not a model.\nÉtonnant, n'est-ce pas?\n" * 40


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def refused(result, name: str) -> None:
    """Exit 1 and one line on stderr naming the file and --force."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert name in lines[0] and "--force" in lines[0] and "not replacing it" in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.fixture
def novel(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


# -- train ------------------------------------------------------------------------------------


def test_train_refuses_to_replace_a_text_and_force_replaces_it(novel, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = novel.read_bytes()
    result = cli("train", "hihello", "--out", "input.txt", *TINY)
    refused(result, "input.txt")
    assert "loading" not in result.output  # refused before the slow part begins, not after it
    assert novel.read_bytes() == before  # byte for byte
    assert not (tmp_path / "input.metrics.jsonl").exists()  # nothing written beside it either
    result = cli("train", "hihello", "--out", "input.txt", "--force", *TINY)
    assert result.exit_code == 0, result.output
    assert load(novel).vocab.chars == tuple("hielo")


def test_train_on_one_text_refuses_to_write_over_another(novel, tmp_path):
    other = tmp_path / "h2.txt"
    other.write_text("held out, and precious\n" * 20, encoding="utf-8")
    result = cli("train", "--file", novel, "--out", other, *TINY)
    refused(result, "h2.txt")
    assert other.read_text(encoding="utf-8") == "held out, and precious\n" * 20


def test_train_replaces_its_own_checkpoint_and_an_empty_file(tmp_path):
    out = tmp_path / "run.pt"
    assert cli("train", "hihello", "--out", out, *TINY).exit_code == 0
    first = out.read_bytes()
    result = cli("train", "hihello", "--out", out, *TINY, "--seed", "3")  # retrain: replaced as ever
    assert result.exit_code == 0, result.output
    assert out.read_bytes() != first
    empty = tmp_path / "empty.pt"
    empty.touch()  # nothing in it to lose
    assert cli("train", "hihello", "--out", empty, *TINY).exit_code == 0
    assert load(empty).step == 2


def test_train_refuses_an_export_and_foreign_files_beside_the_checkpoint(hihello, tmp_path):
    exported = tmp_path / "m.safetensors"
    api.export(hihello, exported)
    before = exported.read_bytes()
    result = cli("train", "hihello", "--out", exported, *TINY)
    refused(result, "m.safetensors")
    assert "a charnext export, not a checkpoint" in result.stderr
    assert exported.read_bytes() == before
    # the metrics log and the best checkpoint a run writes beside its checkpoint
    log = tmp_path / "run.metrics.jsonl"
    log.write_text("my notes\n", encoding="utf-8")
    refused(cli("train", "hihello", "--out", tmp_path / "run.pt", *TINY), "run.metrics.jsonl")
    assert log.read_text(encoding="utf-8") == "my notes\n" and not (tmp_path / "run.pt").exists()
    log.unlink()
    best = tmp_path / "run.best.pt"
    best.write_text("my notes\n", encoding="utf-8")
    refused(cli("train", "hihello", "--out", tmp_path / "run.pt", *TINY), "run.best.pt")
    assert best.read_text(encoding="utf-8") == "my notes\n"


def test_the_api_refuses_before_training(novel):
    events = []
    with pytest.raises(OutputExists, match="input.txt"):
        api.train("hihello", out=novel, steps=2, hidden_size=8, precision="fp32", on_event=events.append)
    assert events == [] and novel.read_text(encoding="utf-8") == TEXT
    result = api.train("hihello", out=novel, steps=2, hidden_size=8, precision="fp32", force=True)
    assert result.checkpoint == novel and load(novel).step == 2


def test_a_resumed_run_writing_elsewhere_refuses_a_foreign_file(tmp_path, novel):
    run = tmp_path / "run.pt"
    assert cli("train", "hihello", "--out", run, *TINY).exit_code == 0
    refused(cli("train", "hihello", "--resume", run, "--steps", "3", "--out", novel), "input.txt")
    assert novel.read_text(encoding="utf-8") == TEXT
    assert cli("train", "hihello", "--resume", run, "--steps", "3").exit_code == 0  # itself: replaced
    assert load(run).step == 3


# -- export -----------------------------------------------------------------------------------


def test_export_replaces_only_an_earlier_export(hihello, tmp_path, novel):
    refused(cli("export", hihello, "--out", novel), "input.txt")
    assert novel.read_text(encoding="utf-8") == TEXT
    out = tmp_path / "m.safetensors"
    assert cli("export", hihello, "--out", out).exit_code == 0
    assert cli("export", hihello, "--out", out).exit_code == 0  # an export: replaced
    run = tmp_path / "run.pt"
    assert cli("train", "hihello", "--out", run, *TINY).exit_code == 0
    before = run.read_bytes()
    result = cli("export", hihello, "--out", run)  # a checkpoint's training state would be lost
    refused(result, "run.pt")
    assert "a charnext checkpoint, not an export" in result.stderr and run.read_bytes() == before
    assert cli("export", hihello, "--out", novel, "--force").exit_code == 0
    assert load(novel).step == load(hihello).step


# -- report, page, plot ------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["report", "page"])
def test_html_commands_refuse_a_foreign_file_before_loading(command, novel):
    refused(cli(command, "-c", MISSING, "--out", novel), "input.txt")  # before the missing checkpoint
    assert novel.read_text(encoding="utf-8") == TEXT


def test_report_replaces_its_own_report_only(hihello, tmp_path, novel):
    out = tmp_path / "r.html"
    args = ["report", "-c", hihello, "--chars", "40", "--units", "1", "--max-chars", "200"]
    assert cli(*args, "--out", out).exit_code == 0
    assert replacing.GENERATOR["report"] in out.read_text(encoding="utf-8")
    assert cli(*args, "--out", out).exit_code == 0  # its own: replaced
    older = tmp_path / "old.html"  # a report written before the marker: its title line
    older.write_text('<!DOCTYPE html>\n<html lang="en"><head><title>charnext report: hi.pt</title>', "utf-8")
    assert cli(*args, "--out", older).exit_code == 0
    page = tmp_path / "p.html"
    page.write_text(f"<head>{replacing.GENERATOR['page']}</head>", encoding="utf-8")
    result = cli(*args, "--out", page)
    refused(result, "p.html")
    assert "a charnext page, not a report" in result.stderr
    assert cli(*args, "--out", novel, "--force").exit_code == 0
    assert replacing.GENERATOR["report"] in novel.read_text(encoding="utf-8")


def test_page_replaces_its_own_page_only(hihello, tmp_path, novel):
    out = tmp_path / "p.html"
    assert cli("page", "-c", hihello, "--out", out).exit_code == 0
    assert replacing.GENERATOR["page"] in out.read_text(encoding="utf-8")
    assert cli("page", "-c", hihello, "--out", out).exit_code == 0
    refused(cli("page", "-c", hihello, "--out", novel), "input.txt")
    assert cli("page", "-c", hihello, "--out", novel, "--force").exit_code == 0
    assert replacing.GENERATOR["page"] in novel.read_text(encoding="utf-8")


def test_inspect_plot_replaces_only_its_own_image(hihello, tmp_path, novel):
    pytest.importorskip("matplotlib")
    refused(cli("inspect", MISSING, "--plot", novel), "input.txt")  # before loading
    assert "--plot" in cli("inspect", MISSING, "--plot", novel).stderr
    assert novel.read_text(encoding="utf-8") == TEXT
    image = tmp_path / "loss.png"
    assert cli("inspect", hihello, "--plot", image).exit_code == 0
    assert cli("inspect", hihello, "--plot", image).exit_code == 0  # its own: replaced
    drawing = tmp_path / "drawing.png"
    drawing.write_bytes(b"\x89PNG\r\n\x1a\n someone's drawing")
    refused(cli("inspect", hihello, "--plot", drawing), "drawing.png")
    assert cli("inspect", hihello, "--plot", drawing, "--force").exit_code == 0
    assert replacing.kind_of(drawing, replacing.PLOT) == replacing.PLOT


# -- prepare ----------------------------------------------------------------------------------


def test_prepare_refuses_a_folder_of_someone_elses_files(novel, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "meta.json").write_text('{"mine": true}\n', encoding="utf-8")
    refused(cli("prepare", "--file", novel, "--out", folder), "meta.json")
    assert (folder / "meta.json").read_text(encoding="utf-8") == '{"mine": true}\n'
    assert not (folder / "tokens.bin").exists()
    (folder / "meta.json").unlink()
    (folder / "tokens.bin").write_bytes(b"\x01\x02\x03")  # no meta.json: not a prepared folder
    refused(cli("prepare", "--file", novel, "--out", folder), "tokens.bin")
    assert (folder / "tokens.bin").read_bytes() == b"\x01\x02\x03"
    assert cli("prepare", "--file", novel, "--out", folder, "--force").exit_code == 0
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    assert meta["format"] == "charnext-tokens"
    assert cli("prepare", "--file", novel, "--out", folder).exit_code == 0  # its own: replaced
    result = cli("prepare", "--file", novel, "--out", novel)  # a file: never replaced by a folder
    assert result.exit_code == 1 and "is a file" in result.stderr
    assert novel.read_text(encoding="utf-8") == TEXT


def test_the_plot_names_the_maker_replacing_looks_for():
    from charnext.rendering import plot

    assert plot.PLOT_CREATOR == replacing.PLOT_CREATOR


def test_each_kind_is_recognised_from_its_bytes(hihello, tmp_path):
    exported = tmp_path / "m.safetensors"
    api.export(hihello, exported)
    assert replacing.kind_of(hihello) == replacing.CHECKPOINT
    assert replacing.kind_of(exported) == replacing.EXPORT
    metrics = hihello.with_name("hi.metrics.jsonl")
    assert replacing.kind_of(metrics) == replacing.METRICS
    other = tmp_path / "other.safetensors"  # a safetensors file, but not ours
    header = json.dumps({"__metadata__": {"format": "pt"}}).encode()
    other.write_bytes(len(header).to_bytes(8, "little") + header)
    assert replacing.kind_of(other) is None
