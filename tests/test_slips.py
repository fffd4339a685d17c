"""The slips a newcomer makes with `train`: a file name given as TEXT, an --out folder."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from charnext import api
from charnext.cli.app import app

TINY = ["--hidden-size", "16", "--num-layers", "1", "--steps", "3", "--precision", "fp32", "--device", "cpu"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_text_naming_a_file_asks_which(tmp_path, monkeypatch):
    """`charnext train input.txt` trains on neither the file nor its name: it asks the user to
    choose, in one line, before anything loads, and writes nothing."""
    monkeypatch.chdir(tmp_path)
    Path("input.txt").write_text("hello there\n", encoding="utf-8")
    result = run("train", "input.txt", *TINY)
    assert result.exit_code == 2, result.output
    choose = ("error: 'input.txt' names a file: train on the file with --file input.txt, or on these 9 "
              "characters themselves with: printf %s input.txt | charnext train -")  # fmt: skip
    assert result.stderr.strip() == choose and "loading" not in result.output
    assert not Path("checkpoint.pt").exists()
    assert run("train", "--file", "input.txt", *TINY).exit_code == 0
    assert "note:" not in run("train", "hihello", *TINY).stderr  # no file of that name: nothing said


def test_out_in_a_missing_folder_is_created(tmp_path):
    out = tmp_path / "runs" / "hi" / "model.pt"
    assert run("train", "hihello", "--out", out, *TINY).exit_code == 0
    assert out.is_file()


def test_out_ending_in_a_slash_or_naming_a_folder_writes_checkpoint_pt(tmp_path):
    assert run("train", "hihello", "--out", f"{tmp_path / 'new'}/", *TINY).exit_code == 0
    assert (tmp_path / "new" / "checkpoint.pt").is_file()
    (tmp_path / "old").mkdir()
    assert run("train", "hihello", "--out", tmp_path / "old", *TINY).exit_code == 0
    assert (tmp_path / "old" / "checkpoint.pt").is_file()


def test_out_under_a_file_is_refused_before_training(tmp_path):
    (tmp_path / "a.txt").write_text("x", encoding="utf-8")
    result = run("train", "hihello", "--out", tmp_path / "a.txt" / "m.pt", *TINY)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot write") and "is not a folder" in result.stderr
    assert "step" not in result.stdout  # refused before the first step


def test_api_out_folder(tmp_path):
    result = api.train("hihello", out=tmp_path / "deep" / "er", steps=2, hidden_size=8, num_layers=1)
    assert result.checkpoint == tmp_path / "deep" / "er"  # a file name without a suffix stays a file
    result = api.train("hihello", out=f"{tmp_path}/dir/", steps=2, hidden_size=8, num_layers=1)
    assert result.checkpoint == tmp_path / "dir" / "checkpoint.pt"
