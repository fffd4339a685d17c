"""Evaluation, the surprise view, inspect's curves and plot, and JSON output of every command."""

from __future__ import annotations

import io
import json
import math
import sys

import pytest
from conftest import POEM
from rich.console import Console
from typer.testing import CliRunner

from charnext import api
from charnext.cli.app import app
from charnext.rendering import evaluate_view
from charnext.text.paths import shown_path

runner = CliRunner()
TINY = {"hidden_size": 32, "num_layers": 1, "precision": "fp32", "device": "cpu"}
SMALL_TRAIN = ["--hidden-size", 16, "--num-layers", 1, "--steps", 20, "--precision", "fp32"]


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def with_validation(tmp_path_factory):
    """A tiny model trained with a validation part, so that it has both loss curves."""
    path = tmp_path_factory.mktemp("evaluate") / "val.pt"
    api.train(POEM * 25, out=path, steps=60, lr=0.01, seq_len=32, batch_size=8, val_fraction=0.2,
              eval_every=10, **TINY)  # fmt: skip
    return path


def write(tmp_path, text: str, name: str = "t.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def evaluation(*args, input=None) -> dict:
    result = run("evaluate", *args, "--json", input=input)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 1
    return json.loads(result.stdout)


def test_numbers_are_consistent(with_validation, tmp_path):
    text = POEM * 3
    obj = evaluation("-f", write(tmp_path, text), "-c", with_validation)
    assert obj["characters"] == len(text) - 1 and obj["skipped"] == 0
    assert math.isclose(obj["bits_per_char"], obj["loss"] / math.log(2), rel_tol=1e-9)
    assert math.isclose(obj["perplexity"], math.exp(obj["loss"]), rel_tol=1e-9)
    assert 0.0 <= obj["accuracy"] <= 1.0 and obj["loss"] > 0


def test_memorised_text_scores_near_zero(hihello, tmp_path):
    obj = evaluation("-f", write(tmp_path, "hihello"), "-c", hihello)
    assert obj["characters"] == 6 and obj["accuracy"] == 1.0
    assert obj["loss"] < 0.05 and obj["perplexity"] < 1.06


def test_reads_standard_input(hihello):
    obj = evaluation("-f", "-", "-c", hihello, input="hihello")
    assert obj["characters"] == 6


def test_plain_output(hihello, tmp_path):
    result = run("evaluate", "-f", write(tmp_path, "hihello"), "-c", hihello)
    assert result.exit_code == 0, result.output
    for needle in ("loss", "bits/char", "perplexity", "accuracy", "6 characters"):
        assert needle in result.stdout, needle
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_unknown_characters(hihello, tmp_path):
    path = write(tmp_path, "hihello world")
    result = run("evaluate", "-f", path, "-c", hihello)
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "unknown characters '␣' 'w' 'r' 'd'" in result.stderr
    skipped = run("evaluate", "-f", path, "-c", hihello, "--skip-unknown", "--json")
    assert skipped.exit_code == 0, skipped.output
    obj = json.loads(skipped.stdout)
    assert obj["skipped"] == 4 and obj["skipped_chars"] == [" ", "w", "r", "d"]
    assert obj["characters"] == len("hihellool") - 1
    assert "skipped characters not in the vocabulary" in skipped.stderr


def test_too_little_text(hihello, tmp_path):
    result = run("evaluate", "-f", write(tmp_path, "h"), "-c", hihello)
    assert result.exit_code == 1 and "fewer than 2" in result.stderr


def test_missing_file_and_checkpoint(hihello, tmp_path):
    assert "no such file" in run("evaluate", "-f", tmp_path / "none.txt", "-c", hihello).stderr
    result = run("evaluate", "-f", write(tmp_path, "hihello"), "-c", tmp_path / "none.pt")
    assert result.exit_code == 1 and "no such checkpoint" in result.stderr


# -- the surprise view ---------------------------------------------------------------------------


def test_show_lists_the_surprising_positions(hihello, tmp_path):
    # after "hihellohihe" the model expects "l"; the "h" at position 11 surprises it
    result = run("evaluate", "-f", write(tmp_path, "hihellohihehlo"), "-c", hihello, "--show")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "marked under it" in out and "! < 1%" in out  # the legend of the plain (colourless) view
    assert "most surprising characters" in out
    rows = [line for line in out.splitlines() if "[h]" in line and "hihellohihe"[-5:] in line]
    assert rows and rows[0].split()[0] == "11"
    assert "l 0.9" in rows[0] or "l 1.0" in rows[0]  # what it expected instead
    lines = out.splitlines()
    text_row = next(i for i, line in enumerate(lines) if line.strip() == "hihellohihehlo")
    assert lines[text_row + 1][2 + 11] == "!"  # the mark under the surprising "h"
    assert "\x1b[" not in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_show_keeps_lines_and_wraps(with_validation, tmp_path):
    text = POEM + "Tyger " * 30
    result = run("evaluate", "-f", write(tmp_path, text), "-c", with_validation, "--show")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for line in POEM.splitlines():  # each line of the text on its own, its newline shown
        assert sum(row.strip() == line + "↵" for row in lines) == 1, line
    assert max(len(line) for line in lines) <= 80  # the long last line wraps


def test_show_offset_and_length(with_validation, tmp_path):
    text = POEM * 3
    obj = evaluation("-f", write(tmp_path, text), "-c", with_validation, "--show", "--offset", 30,
                     "--show-chars", 50, "--most", 5)  # fmt: skip
    s = obj["surprise"]
    assert s["offset"] == 30 and s["text"] == text[30:80] and len(s["chars"]) == 50
    assert len(s["most_surprising"]) == 5
    probs = [c["probability"] for c in s["most_surprising"]]
    assert probs == sorted(probs) and all(0 < p <= 1 for p in probs)
    assert all(len(c["top"]) == 3 for c in s["chars"])
    result = run("evaluate", "-f", write(tmp_path, text), "-c", with_validation, "--show", "--offset", 10**6)
    assert result.exit_code == 2 and "past the end" in result.stderr


def test_surprise_matches_one_pass(with_validation):
    """The probabilities of a stretch equal those of reading the whole text at once, at every
    position of the stretch (not only where the model happened to be right)."""
    ckpt = api.load(with_validation)
    text = POEM * 2
    whole = api.predict(ckpt, text, alternatives=len(ckpt.vocab)).steps  # steps[i] predicts text[i + 1]
    view = api.surprisal(ckpt, text, offset=100, length=40)
    assert [c.position for c in view.chars] == list(range(100, 140))
    for c in view.chars:
        full = dict(whole[c.position - 1].top)  # the whole distribution after text[:position]
        assert math.isclose(c.prob, full[c.char], rel_tol=1e-4, abs_tol=1e-7), c.position
        assert c.top[0][0] == whole[c.position - 1].predicted
    first = api.surprisal(ckpt, text, offset=0, length=5).chars[0]
    assert first.prob is None and first.surprisal is None  # nothing came before it


def test_surprise_in_line_mode(tmp_path, names):
    path = tmp_path / "names.pt"
    api.train(names, out=path, steps=30, lr=0.01, lines=True, batch_size=16, **TINY)
    view = api.surprisal(api.load(path), names, offset=3, length=40)
    assert view.text == names[3:43] and all(c.prob is not None and 0 < c.prob <= 1 for c in view.chars)


def test_heat_map_in_colour(monkeypatch):
    from charnext.inference.surprise import CharSurprise

    monkeypatch.delenv("NO_COLOR")

    chars = [CharSurprise(0, "a", None), CharSurprise(1, "b", 0.9), CharSurprise(2, " ", 0.001),
             CharSurprise(3, "\n", 0.3), CharSurprise(4, "c", 0.05)]  # fmt: skip
    view = api.Surprise(0, chars)
    buf = io.StringIO()
    con = Console(file=buf, force_terminal=True, color_system="standard", width=80)
    evaluate_view.show_surprise(con, view)
    out = buf.getvalue()
    assert "\x1b[" in out and "≥ 50%" in out and "< 1%" in out  # coloured, with a legend
    assert "marked under" not in out  # colour replaces the marks
    assert "↵" in out and "most surprising" in out


# -- inspect: curves and plot ----------------------------------------------------------------------


def test_inspect_shows_train_and_validation_curves(with_validation):
    result = run("inspect", with_validation)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "• train loss" in out and "◦ validation loss" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_inspect_plot_writes_png(with_validation, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    result = run("inspect", with_validation, "--plot", png, "--json")
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.loads(result.stdout)  # the note about the file goes to stderr
    assert result.stderr.strip() == f"loss curves written to {shown_path(png)}"  # one line, any width


def test_inspect_plot_without_matplotlib(with_validation, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    result = run("inspect", with_validation, "--plot", tmp_path / "c.png")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs matplotlib" in lines[0] and "charnext[plot]" in lines[0]
    assert not (tmp_path / "c.png").exists()


# -- JSON on every command -----------------------------------------------------------------------


def test_every_command_prints_one_json_object(hihello, tmp_path):
    path = tmp_path / "j.pt"
    outputs = {
        "train": run("train", "hihello", "--out", path, *SMALL_TRAIN, "--json"),
        "predict": run("predict", "-c", hihello, "-p", "hihell", "-n", 5, "--json"),
        "evaluate": run("evaluate", "-c", hihello, "-f", write(tmp_path, "hihello"), "--show", "--json"),
        "inspect": run("inspect", hihello, "--json"),
    }
    keys = {
        "train": {"steps", "loss", "accuracy", "val_loss", "checkpoint"},
        "predict": {"prefix", "prediction", "steps", "generated", "samples", "skipped"},
        "evaluate": {"loss", "bits_per_char", "perplexity", "accuracy", "characters", "skipped", "surprise"},
        "inspect": {"model", "vocabulary", "training", "history", "validation"},
    }
    for name, result in outputs.items():
        assert result.exit_code == 0, (name, result.output)
        assert len(result.stdout.strip().splitlines()) == 1, name
        assert set(json.loads(result.stdout)) >= keys[name], name


def test_evaluate_help_does_not_import_torch():
    import subprocess

    args = [sys.executable, "-X", "importtime", "-m", "charnext", "evaluate", "--help"]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0 and "--show-chars" in proc.stdout
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "torch" not in imported
