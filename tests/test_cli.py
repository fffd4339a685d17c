"""The command line, driven through Typer's CliRunner at 80 columns without colour."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from charnext import __version__
from charnext.cli.app import app
from charnext.storage.checkpoint import load_raw

runner = CliRunner()
FAST = ["--hidden-size", "32", "--num-layers", "1", "--steps", "150", "--lr", "0.01"]


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def assert_one_line_error(result, code=1, match=None):
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert "Traceback" not in result.output + result.stderr
    if match:
        assert match in lines[0], lines[0]


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.stdout


def test_help_does_not_import_torch():
    for args in ([], ["train"], ["predict"], ["inspect"]):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "charnext", *args, "--help"],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0
        imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
        assert "torch" not in imported, args


def test_train_shows_the_lecture_table(tmp_path):
    path = tmp_path / "hi.pt"
    result = run("train", "hihello", "--out", path, *FAST)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "prediction" in out and "target" in out
    assert "ihello" in out and "100%" in out
    assert "training done" in out and "checkpoint" in out
    shown = out.splitlines()
    assert shown[-2] == "next:" and shown[-1].endswith(f" -c {path}")  # whole, below its label: a long path
    assert max(len(line) for line in shown[:-1]) <= 80
    assert "\x1b[" not in out  # no colour codes in a pipe
    assert path.exists()


def test_train_from_stdin_and_file(tmp_path):
    result = run("train", "-", "--out", tmp_path / "a.pt", *FAST, input="hihello")
    assert result.exit_code == 0, result.output
    text = tmp_path / "t.txt"
    text.write_text("hihello", encoding="utf-8")
    result = run("train", "--file", text, "--out", tmp_path / "b.pt", *FAST)
    assert result.exit_code == 0, result.output
    a = load_raw(tmp_path / "a.pt")
    b = load_raw(tmp_path / "b.pt")
    assert a["vocab"] == b["vocab"] == ["h", "i", "e", "l", "o"]


def test_train_json_summary(tmp_path):
    result = run("train", "hihello", "--out", tmp_path / "a.pt", "--json", *FAST)
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["steps"] == 150 and summary["accuracy"] == 1.0


def test_predict_table_and_prediction(hihello):
    result = run("predict", "--prefix", "hihell", "--checkpoint", hihello)
    assert result.exit_code == 0, result.output
    assert "prediction: ihello" in result.stdout
    assert "top 3" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_predict_json(hihello):
    result = run("predict", "--prefix", "hihell", "-c", hihello, "--json", "--length", "4")
    assert result.exit_code == 0, result.output
    obj = json.loads(result.stdout)
    assert obj["prediction"] == "ihello"
    assert [s["input"] for s in obj["steps"]] == list("hihell")
    assert obj["steps"][0]["predicted"] == "i" and 0 < obj["steps"][0]["probability"] <= 1
    assert len(obj["steps"][0]["top"]) == 3
    assert len(obj["generated"]) == 4


def test_predict_continues_greedily(hihello):
    result = run("predict", "--prefix", "hihell", "-c", hihello, "--length", "1", "--temperature", "0")
    assert result.exit_code == 0
    assert "hihello" in result.stdout


def test_predict_unknown_characters(hihello):
    result = run("predict", "--prefix", "hi there", "-c", hihello)
    assert_one_line_error(result, 1, "'␣'")
    assert "holds 5 characters: ehilo" in result.stderr  # sorted


def test_predict_missing_checkpoint(tmp_path):
    assert_one_line_error(
        run("predict", "--prefix", "hi", "-c", tmp_path / "none.pt"), 1, "no such checkpoint"
    )


def test_inspect(hihello):
    result = run("inspect", hihello)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for needle in ("lstm", "1 × 32 units", "parameters", "one-hot", "1 0 0 0 0", "loss history", "150"):
        assert needle in out, needle
    assert max(len(line) for line in out.splitlines()) <= 80


def test_inspect_says_a_model_was_trained_with_weight_drop(hihello, tmp_path):
    assert "weight drop" not in run("inspect", hihello).stdout
    out = tmp_path / "wd.pt"
    trained = run("train", "hihello hello", "--steps", "5", "--num-layers", "2", "--hidden-size", "8",
                  "--weight-drop", "0.4", "--out", out)  # fmt: skip
    assert trained.exit_code == 0, trained.output
    rows = [line.split() for line in run("inspect", out).stdout.splitlines()]
    assert ["dropout", "0"] in rows
    assert ["weight", "drop", "0.4", "(recurrent", "weights)"] in rows


def test_inspect_json(hihello):
    obj = json.loads(run("inspect", hihello, "--json").stdout)
    assert obj["model"]["cell"] == "lstm" and obj["model"]["hidden_size"] == 32
    assert obj["model"]["parameters"] > 0 and obj["model"]["num_layers"] == 1
    assert obj["vocabulary"] == ["h", "i", "e", "l", "o"]
    assert len(obj["history"]) == 150


def test_inspect_corrupt_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00not a checkpoint" * 10)
    assert_one_line_error(run("inspect", bad), 1)


@pytest.mark.parametrize(
    ("args", "code", "match"),
    [
        (["train", "x"], 1, "at least 2"),
        (["train", ""], 1, "at least 2"),
        (["train", "hihello", "--hidden-size", "0"], 2, "--hidden-size"),
        (["train", "hihello", "--steps", "-5"], 2, "--steps"),
        (["train", "hihello", "--dropout", "2"], 2, "--dropout"),
        (["train", "hihello", "--max-time", "soon"], 2, "--max-time must be a duration"),
        (["train", "--file", "/nonexistent/file.txt"], 1, "no such file"),
    ],
)
def test_bad_input_gives_one_line(args, code, match, tmp_path):
    assert_one_line_error(run(*args, "--out", tmp_path / "x.pt"), code, match)
    assert not (tmp_path / "x.pt").exists()


def test_bad_usage_exits_2():
    result = run("train", "hihello", "--cell", "transformer")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_missing_text_is_a_usage_error(tmp_path):
    assert_one_line_error(run("train", "--out", tmp_path / "x.pt"), 2, "give the text")
    assert_one_line_error(run("evaluate", "-c", tmp_path / "x.pt"), 2, "give the text to score")


def test_invalid_utf8_names_the_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"caf" + b"\xe9 au lait")
    assert_one_line_error(run("train", "--file", path), 1, "byte offset 3")


def test_failed_run_keeps_existing_checkpoint(hihello):
    before = hihello.read_bytes()
    assert_one_line_error(run("train", "x", "--out", hihello), 1)
    assert hihello.read_bytes() == before
