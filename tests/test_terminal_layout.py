"""Layout that survives narrow terminals, wide characters and pipes: the training view, the
per-step table, the notation for invisible characters and inspect's curves."""

from __future__ import annotations

import io
import json
import re
import sys
from types import SimpleNamespace

import pytest
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from charnext import api
from charnext.cli.app import app
from charnext.inside.curves import loss_axis, smooth
from charnext.inside.report import ReportData
from charnext.inside.report_html import _curves
from charnext.rendering import console, train_view, widgets
from charnext.rendering.plot import y_range
from charnext.rendering.widgets import line_chart
from charnext.text.paths import shorten_middle, shown_path
from charnext.text.vocab import Vocab, visible, visible_text

runner = CliRunner()
TINY = ["--hidden-size", "16", "--num-layers", "1", "--precision", "fp32", "--device", "cpu", "--lr", "0.01"]
# Korean made here: wide characters, two terminal cells each
KOREAN = "안녕하세요. 오늘은 날씨가 참 좋네요. 우리 같이 산책하러 갈까요?\n" * 12


def run(*args, input=None, env=None):
    return runner.invoke(app, [str(a) for a in args], input=input, env=env)


def _console(width: int, terminal: bool = False) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    con = Console(file=buf, width=width, force_terminal=terminal, color_system=None, highlight=False)
    if not terminal:
        con.file = console.TrimmedLines(buf)
    return con, buf


def test_piped_korean_training_at_60_columns_keeps_every_column(tmp_path):
    text = tmp_path / "korean.txt"
    text.write_text(KOREAN, encoding="utf-8")
    out = tmp_path / "k.pt"
    result = run("train", "--file", text, "--steps", 30, "--out", out, *TINY, env={"COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "training on korean.txt (1.1 KB): loading..."  # at once, before torch
    assert lines[1].startswith("lstm 1x16, ") and "batch" in lines[1]  # then the run's header
    header = next(line for line in lines if "prediction" in line)
    assert header.split() == ["step", "loss", "acc", "prediction", "target"]
    rows = [line for line in lines if re.match(r"\s+\d+\s+\d+\.\d{4}\s+\d+%\s", line)]
    assert rows and rows[-1].split()[0] == "30"
    assert any("안녕" in row or "녕하" in row for row in rows)  # the target, in Korean
    assert lines[-2] == "next:" and lines[-1].endswith(f" -c {out}")  # the command whole, on one line
    for line in lines[:-1]:  # every line but that command, which stands whole to be pasted
        assert cell_len(line) <= 60, line
        assert line == line.rstrip(), repr(line)  # no trailing spaces in a pipe
    done = next(i for i, line in enumerate(lines) if "training done" in line)
    assert lines.index(header) < lines.index(rows[0]) < done


def _events():
    step = SimpleNamespace(step=1, total=3, fraction=1 / 3, loss=2.0, lr=0.01, chars_per_sec=1000.0,
                           elapsed=6.0, val_loss=None, val_se=None)  # fmt: skip
    report = SimpleNamespace(step=1, loss=2.0, accuracy=0.25, prediction="hello world", target="hello\nworld")
    evaluation = SimpleNamespace(step=1, val_loss=1.5, val_bpc=2.1, val_accuracy=0.3, best=True,
                                 prompt="Hi", sample=" there\nyou", val_se=0.02, val_chars=4096)  # fmt: skip
    return step, report, evaluation


def test_piped_training_view_prints_in_the_order_things_happen():
    con, buf = _console(60)
    step, report, evaluation = _events()
    with train_view.TrainView(con, "the run's header") as view:
        view.row(report)
        view.step(step)
        view.evaluation(evaluation)
        view.row(SimpleNamespace(**{**vars(report), "step": 2}))
    lines = buf.getvalue().splitlines()
    assert lines[0] == "the run's header"
    assert lines[1].split() == ["step", "loss", "acc", "prediction", "target"]
    assert lines[3].split()[:3] == ["1", "2.0000", "25%"]
    assert lines[4].startswith("step 1/3 loss 2.000")  # the progress line, after the row before it
    val = next(i for i, line in enumerate(lines) if line.startswith("step 1 val loss"))
    assert lines[val].startswith("step 1 val loss 1.5000 ± 0.020 (2.100 bits/char)") and val in (5, 6)
    assert lines[val + 1] == "  Hi there↵you"  # running text: spaces stay, a newline is ↵
    assert lines[val + 2].split()[0] == "2"
    assert "hello␣world" in lines[3] and "hello↵world" in lines[3]  # a table: ␣ and ↵


def test_piped_progress_lines_fit_the_width():
    # a small model's figures are long: a step total, a validation with its error, 245.8k chars/s
    step = SimpleNamespace(step=12345, total=20000, fraction=0.62, loss=1.913, lr=0.01,
                           chars_per_sec=245_800.0, elapsed=125.0, val_loss=2.222, val_se=0.123)  # fmt: skip
    for width in (60, 80, 120):
        con, buf = _console(width)
        with train_view.TrainView(con, "header") as view:
            view.step(step)
        lines = buf.getvalue().splitlines()[1:]
        assert all(cell_len(line) <= width for line in lines), (width, lines)
        shown = " ".join(line.strip() for line in lines)
        for part in ("step 12345/20000", "loss 1.913", "val 2.222 ± 0.123", "245.8k chars/s", "62%",
                     "elapsed 2m05s", "eta 1m16s"):  # fmt: skip
            assert part in shown, (part, lines)
        assert len(lines) == (1 if width >= 120 else 2)  # one line where it fits


def test_training_view_shortens_text_columns_first():
    for width in (40, 60, 80):
        con, buf = _console(width)
        report = SimpleNamespace(step=123456, loss=12.3456, accuracy=1.0, prediction="가" * 40,
                                 target="x" * 80)  # fmt: skip
        with train_view.TrainView(con, "header") as view:
            view.row(report)
        lines = buf.getvalue().splitlines()
        assert lines[-1].split()[:3] == ["123456", "12.3456", "100%"]
        assert all(cell_len(line) <= width for line in lines[1:]), (width, lines)
        assert "…" in lines[-1]


def test_top_k_pairs_never_break_inside(tmp_path):
    path = tmp_path / "poem.pt"
    api.train("Tyger Tyger, burning bright,\nIn the forests of the night;\n" * 8, out=path, steps=5,
              hidden_size=16, num_layers=1, precision="fp32", device="cpu")  # fmt: skip
    for width in (50, 80):
        result = run("predict", "Tyger", "-c", path, "--alternatives", 12, env={"COLUMNS": str(width)})
        assert result.exit_code == 0, result.output
        out = result.stdout
        obj = json.loads(run("predict", "Tyger", "-c", path, "--alternatives", 12, "--json").stdout)
        for step in obj["steps"]:
            for pair in step["top"]:
                assert f"{visible(pair['char'])} {pair['probability']:.2f}" in out  # whole, on one line
        assert all(cell_len(line) <= width for line in out.splitlines()), out


def test_one_notation_for_invisible_characters():
    assert visible("\n") == "↵" and visible(" ") == "␣" and visible("\t") == "\\t"
    assert visible("↵") == "\\u21b5" and visible("␣") == "\\u2423"  # never mistaken for the marks
    assert visible_text("a b\n") == "a␣b↵" and visible_text("a b\n", spaces=True) == "a b↵"


def test_unknown_character_error_lists_the_vocabulary_sorted_and_escaped():
    vocab = Vocab.from_text("emma\nolivia sophia\n")
    message = vocab.unknown_message(["x"])
    assert message.endswith("holds 12 characters: ↵␣aehilmopsv")


def test_line_mode_table_shows_targets(tmp_path, names):
    result = run("train", "-", "--lines", "--steps", 5, "--out", tmp_path / "n.pt", *TINY, input=names)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if re.match(r"\s+\d+\s+\d+\.\d{4}\s+\d+%\s", line)]
    assert rows and all(row.rstrip().endswith("emma↵") for row in rows), rows


def test_smoothing():
    assert smooth([]) == []
    assert smooth([2.0] * 50) == [2.0] * 50
    assert smooth([4.0, 1.0], span=9)[0] == 4.0  # corrected for its start: not pulled towards 0
    noisy = [1.0 + (0.5 if i % 2 else -0.5) for i in range(400)]
    tail = smooth(noisy)[100:]
    assert max(tail) - min(tail) < 0.2


def test_one_loss_axis_fits_the_curves_after_their_first_tenth():
    """The terminal chart, the --plot image and the report share one scale: from the lowest loss
    to the highest after the first tenth of the steps (the untrained start does not squash it)."""
    points = list(zip(range(1, 41), [4.2, 2.0, 1.9, 1.85, 1.8] + [1.7] * 34 + [1.6]))
    assert loss_axis(points) == (1.6, 1.8)  # from step 4.9 = 1 + 39/10 on: steps 1-4 are early
    assert loss_axis([(3, 2.5), (7, float("nan"))]) == (2.5, 2.5)  # one finite point: itself
    lo, hi = y_range(points)  # the image adds a margin of 5%
    assert lo == pytest.approx(1.59) and hi == pytest.approx(1.81)
    chart = line_chart({"loss": ([x for x, _ in points], [y for _, y in points])}, width=40).plain
    assert "1.80 │" in chart and "early values up to 4.20 sit on the top row" in chart
    history = {"history_steps": [x for x, _ in points], "history": [y for _, y in points]}
    report_svg = _curves(
        ReportData("m", {**history, "validation": {"steps": [], "loss": []}}, "", [], [], [], 0)
    )
    # the report cuts the curve at the top edge and marks where it leaves it (^), not flat along it
    assert ">1.80</text>" in report_svg and "above it (^) the early losses run up to 4.20" in report_svg


def test_inspect_reports_best_validation_and_a_smoothed_curve(tmp_path, poem):
    path = tmp_path / "p.pt"
    api.train(poem, out=path, steps=30, val_fraction=0.2, eval_every=10, hidden_size=16, num_layers=1,
              precision="fp32", device="cpu", seq_len=32)  # fmt: skip
    result = run("inspect", path)
    assert result.exit_code == 0, result.output
    out = result.stdout
    history = api.load(path).history
    best = min(history["val_loss"])
    se = history["val_se"][history["val_loss"].index(best)]  # the best check's, on the run's sample
    assert f"best validation   {best:.4f} ± {se:.3f} nats/char" in out
    assert "best loss" not in out and "smoothed" in out
    assert "• train loss, smoothed" in out and "· per step" in out and "◦ validation loss" in out


def test_plot_draws_smoothed_and_raw(tmp_path, poem):
    pytest.importorskip("matplotlib")
    path = tmp_path / "p.pt"
    api.train(poem, out=path, steps=20, hidden_size=16, num_layers=1, precision="fp32", device="cpu")
    result = run("inspect", path, "--plot", tmp_path / "loss.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


# -- paths that read as paths ------------------------------------------------------------------


def test_shown_path_is_relative_inside_the_current_folder_and_uses_tilde_for_home(tmp_path, monkeypatch):
    home, work, elsewhere = tmp_path / "home", tmp_path / "home" / "work", tmp_path / "other"
    for folder in (work, elsewhere):
        folder.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    assert shown_path(work / "runs" / "a.pt") == "runs/a.pt"
    assert shown_path("runs/../a.pt") == "a.pt"
    assert shown_path(work) == "."
    assert shown_path(home / "notes" / "b.txt") == "~/notes/b.txt"
    assert shown_path(elsewhere / "c.pt") == str(elsewhere / "c.pt")  # outside both: absolute
    assert shown_path(str(home) + "x/d.pt") == str(home) + "x/d.pt"  # a sibling, not inside home


def test_a_long_path_is_shortened_between_names():
    path = "/tmp/" + "a" * 50 + "/runs/deep/run.metrics.jsonl"
    assert shorten_middle(path, len(path)) == path
    assert shorten_middle(path, 40) == "/tmp/…/runs/deep/run.metrics.jsonl"
    assert shorten_middle(path, 30) == "/…/runs/deep/run.metrics.jsonl"
    assert shorten_middle(path, 29) == "…/runs/deep/run.metrics.jsonl"
    assert shorten_middle(path, 19) == "…/run.metrics.jsonl"
    assert shorten_middle(path, 12) == "run.m….jsonl"  # the file name alone, cut in its middle
    name = shorten_middle("x" * 30 + ".txt", 12)  # a name alone too wide: cut inside, ends kept
    assert name == "xxxxx…xx.txt" and cell_len(name) == 12


def test_words_wrap_between_words_and_never_break_one():
    words = widgets.Words(["charnext", "train", "--out", "/tmp/" + "b" * 70 + "/run.pt", "--steps", "6"])
    for width in (20, 40, 60, 200):
        lines = words.lines(width)
        assert all(cell_len(line) <= width for line in lines), (width, lines)
        assert [w for line in lines for w in line.split(" ")][-2:] == ["--steps", "6"]
        shown = next(w for line in lines for w in line.split(" ") if w.endswith("run.pt"))
        assert shown in ("/tmp/" + "b" * 70 + "/run.pt", "/tmp/…/run.pt", "…/run.pt")


DEEP = ("a" * 60, "test_metrics_log_and_provenance_of_a_long_name0", "b" * 30)


def _names(path) -> set[str]:
    return set(str(path).split("/"))


@pytest.mark.parametrize("width", [60, 80])
def test_inspect_of_a_run_in_a_deep_folder_breaks_no_name(tmp_path, monkeypatch, poem, width):
    deep = tmp_path.joinpath(*DEEP)
    deep.mkdir(parents=True)
    text = deep / "poem.txt"
    text.write_text(poem, encoding="utf-8")
    out = deep / "run.pt"
    monkeypatch.chdir(tmp_path.parent)  # neither the current folder nor home holds the run
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sys, "argv", ["charnext"])  # the recorded command: not pytest's arguments
    trained = run("train", "--file", text, "--out", out, "--steps", 4, "--eval-every", 2, *TINY,
                  env={"COLUMNS": str(width)})  # fmt: skip
    assert trained.exit_code == 0, trained.output
    shown = run("inspect", out, env={"COLUMNS": str(width)})
    assert shown.exit_code == 0, shown.output
    known = _names(out) | _names(out.with_name("run.metrics.jsonl")) | _names(text) | {"", "…"}
    known |= {"nats", "char", "bits", "chars", "s"}  # units: nats/char, chars/s
    pieces = []
    command = trained.stdout.splitlines()[-1]  # the next command: whole, to paste, however wide
    assert trained.stdout.splitlines()[-2] == "next:" and command.endswith(
        f" -c {out.relative_to(tmp_path.parent)}"
    )
    for output in (trained.stdout.removesuffix(command + "\n"), shown.stdout):
        for line in output.splitlines():
            assert cell_len(line) <= width, line
            pieces += [p for word in line.split() if "/" in word for p in word.split("/")]
    names = {p.strip("(),") for p in pieces}
    assert names and names <= known, names - known  # every name whole, or left out as …
    assert {"run.pt", "run.metrics.jsonl", "poem.txt"} <= names
    info = json.loads(run("inspect", out, "--json").stdout)
    assert info["path"] == str(out) and info["metrics_log"]["path"] == str(out.with_name("run.metrics.jsonl"))


def test_the_training_summary_shows_paths_from_the_current_folder(tmp_path, monkeypatch, poem):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    result = run("train", poem[:600], "--out", "runs/p.pt", "--steps", 2, *TINY)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[-1] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert rows["checkpoint"] == "runs/p.pt" and rows["metrics"] == "runs/p.metrics.jsonl"
    as_json = run("train", poem[:600], "--out", "runs/q.pt", "--steps", 2, "--json", *TINY)
    assert json.loads(as_json.stdout)["checkpoint"] == str(tmp_path / "runs" / "q.pt")  # full, for programs
