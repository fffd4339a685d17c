"""The slips a newcomer makes with `train` (a file name given as TEXT, an --out folder), and the
small ones of issue 31: figures shown, lines wrapped, characters a model does not know."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
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


# -- issue 31's slips: figures, wrapping and the characters a model does not know ----------------


def test_inspect_rounds_the_peak_lr():
    from charnext.rendering.inspect_view import provenance_rows

    rows = dict(provenance_rows({"schedule": {"lr": 0.0065319726474218085, "warmup_steps": 50,
                                              "total_steps": 900, "min_lr_ratio": 0.1}}, None))  # fmt: skip
    assert "peak lr 0.00653," in rows["schedule"] and "0.0065319" not in rows["schedule"]


def test_the_float16_figure_means_something():
    from charnext.inside.page import PrecisionCheck

    def moved(delta: float) -> str:
        return PrecisionCheck("float16", 1.0, 1.0 + delta, "a sample").describe()

    assert "by less than 0.00001 nats/char" in moved(-3e-7)  # was "-0.00000"
    assert "by less than 0.00001 nats/char" in moved(2e-6)
    assert "by +0.00012 nats/char" in moved(0.00012) and "by -0.00030 nats/char" in moved(-0.0003)
    assert "by 0 nats/char" in PrecisionCheck("float16", 1.0, 1.0, "a sample").describe()


def test_a_report_without_validation_shows_no_validation(tmp_path):
    out = tmp_path / "nv.pt"  # more steps than the chart's 300 bins: its x axis once began at 4 or 5
    api.train("hihello " * 30, out, steps=320, val_fraction=0, hidden_size=8, num_layers=1, seq_len=8,
              batch_size=2, precision="fp32", device="cpu")  # fmt: skip
    page = api.report_page(api.load(out), chars=40, units=1, max_chars=200)
    assert "validation" not in page.split('id="curves"')[1].split("</section>")[0]  # no legend entry
    assert "<dt>validation loss</dt>" not in page and "<dt>best validation</dt>" not in page
    assert "<h2>Training loss</h2>" in page and "training loss (nats/char)" in page
    axis = page.split('id="curves"')[1]
    assert '<text x="48.0" y="262" text-anchor="start">0</text>' in axis  # the axis starts at step 0


def test_next_command_stands_whole_on_one_line_and_the_plan_indents(tmp_path):
    text = tmp_path / "a rather long file name for a text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\n" * 30, encoding="utf-8")
    out = tmp_path / "a folder with a long name" / "and a checkpoint with one too.pt"
    result = CliRunner().invoke(
        app, ["train", "--file", str(text), "--out", str(out), *TINY], env={"COLUMNS": "60"}
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-2] == "next:", lines[-3:]  # too long for 60 columns beside its label: below it
    assert lines[-1].startswith("charnext predict ") and lines[-1].endswith(f" -c {shlex.quote(str(out))}")
    plan = next(i for i, line in enumerate(lines) if line.startswith("plan: "))
    assert lines[plan + 1].startswith(" " * 6) and lines[plan + 1][6] != " ", lines[plan : plan + 2]
    assert max(len(line) for line in lines[plan : plan + 2]) <= 60


def test_evaluate_show_wraps_between_words():
    from charnext.rendering.widgets import wrapped_cells

    text = "the model will speak of things unknown"
    shown = wrapped_cells(((c, None, "^") for c in text), 12, colour=False).plain.splitlines()[::2]
    assert [line.strip() for line in shown] == ["the model", "will speak", "of things", "unknown"]
    long = wrapped_cells(((c, None, "^") for c in "a averyveryverylongword"), 8, colour=False).plain
    assert long.splitlines()[::2] == ["  a averyv", "  eryveryl", "  ongword"]  # broken only where it must be


def test_play_folds_long_lines_and_names_every_unknown_character():
    from charnext.rendering.play_ui import session_keys, typed_rows

    line = "the start of a line that is much longer than the screen is wide"
    rows = typed_rows(line, 30).plain.splitlines()
    assert rows[0].strip().startswith("the start") and rows[-1].endswith("▌")
    assert " ".join(r.strip() for r in rows).rstrip("▌") == line and max(len(r) for r in rows) <= 30

    class Session:
        def type(self, ch: str) -> bool:
            return ch in "abc"

    assert session_keys(Session(), "@é", 5) == "'@' and 'é' are not in the model's vocabulary"
    assert session_keys(Session(), "a@b", 5) == "'@' is not in the model's vocabulary"


@pytest.mark.parametrize(
    "args",
    [["predict", "--nonsense"], ["train", "--hidden-size", "abc"], ["nonsense"], ["predict", "--checkpoint"]],
)
def test_parser_errors_are_one_line(args):
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "-h for help" in lines[0], result.stderr
    assert "Usage:" not in result.output
