"""The benchmarks still run: every script in benchmarks/ with --smoke (tiny texts, few steps, one
run), on a small data folder written here and given with --data (the tests never read
../shared). Each must exit 0 and print only JSON lines on stdout, each with the fixed fields and
the script's own figures. Their figures mean nothing; that they come out at all is the point.

The page benchmarks need Chromium, its driver and Selenium: like the browser tests, they skip
locally where those are missing and fail in CI (the CI environment variable set).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))
import harness  # noqa: E402 - benchmarks/harness.py, found through the path above

NOT_SCRIPTS = {"harness", "plain_lstm_loop", "raw_rnn_loop"}  # the helper, and the copied reference loops
BROWSER = {"page_precision", "page_speed"}
# Each script's figures: every JSON line it prints has one of its key sets, and each set comes.
FIGURES = {
    "budget_hold": [{"budget_s", "wall_s", "over_s", "bar_s", "holds", "steps", "trained_s", "validations"}],
    "busy": [{"threads_option", "idle_chars_per_sec", "busy_chars_per_sec", "kept"}],
    "cold_start": [{"prime", "warm", "cold", "gap", "romeo", "romeo_ok"}],
    "divergence": [{"text", "cell", "lr", "first", "last", "best", "rise", "guard"}],
    "generation_scaling": [
        {"engine", "samples", "chars_per_sec", "cpu_chars_per_sec", "long_over_short", "of_bound_paired"}
    ],
    "inside_the_model": [{"name", "wall_s", "beyond_import_torch_s", "runs_s"}],
    "make_line_corpus": [{"names", "files"}],
    "neurons_engines": [{"what", "engine", "wall_s", "cpu_s"}],
    "page_precision": [{"model", "float32_max_dp", "float16_max_dp", "loss_f32", "loss_f16", "auto"}],
    "page_speed": [{"model", "size", "interactive_s", "page_chars_per_sec", "numpy_chars_per_sec"}],
    "quality": [{"best_val_loss", "steps", "chars_per_sec", "plan"}],
    "replay_turn": [{"log", "checks", "turns_at"}],
    "serve_load": [
        {"clients", "served_chars_per_s", "offline_chars_per_s", "gap_p99_ms", "errors", "busy_429"}
    ],
    "startup": [{"name", "wall_s", "cpu_s", "wall_over_import_torch"}, {"part", "seconds", "runs_s"}],
    "startup_compare": [{"tree", "name", "wall_s", "over_import_torch"}],
    "temperature": [{"temperature", "loss", "bits_per_char"}],
    "throughput": [{"raw_chars_per_sec", "charnext_chars_per_sec", "ratio", "step_alone_chars_per_sec"}],
}
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py") if p.stem not in NOT_SCRIPTS)

PLAY = (
    "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n\n"
    "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\nDeny thy father and refuse thy name.\n\n"
) * 30
NAMES = "\n".join(["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper"] * 15) + "\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A small data folder in place of ../shared/data."""
    folder = tmp_path_factory.mktemp("bench-data")
    (folder / "tinyshakespeare.txt").write_text(PLAY, encoding="utf-8")
    (folder / "names.txt").write_text(NAMES, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """The scripts' temporary folder, shared: the test model is built once and reused."""
    return tmp_path_factory.mktemp("bench-tmp")


def test_every_script_is_known():
    assert SCRIPTS == sorted(FIGURES), "a new benchmark script: name its figures in FIGURES"


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_runs_with_smoke(script, data, scratch, tmp_path):
    if script in BROWSER and harness.browser_missing():
        if os.environ.get("CI"):
            pytest.fail(f"{script} cannot run in CI: {harness.browser_missing()}")
        pytest.skip(harness.browser_missing())
    jsonl = tmp_path / "results.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(scratch),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    env.pop(harness.DATA_ENV, None)
    cmd = [sys.executable, str(BENCH / f"{script}.py"), "--smoke", "--data", str(data), "--jsonl", str(jsonl)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    lines = proc.stdout.splitlines()
    assert lines, proc.stderr[-2000:]
    records = [json.loads(line) for line in lines]  # stdout holds JSON lines and nothing else
    assert jsonl.read_text(encoding="utf-8").splitlines() == lines  # --jsonl has the same lines
    matched = set()
    for rec in records:
        assert list(rec)[:4] == list(harness.FIXED_KEYS), rec
        assert rec["command"].startswith(f"benchmarks/{script}.py ") and "--smoke" in rec["command"]
        assert rec["cpu"] and (rec["threads"] is None or rec["threads"] >= 1), rec
        fits = [i for i, keys in enumerate(FIGURES[script]) if keys <= set(rec)]
        assert fits, f"{script}: {sorted(rec)} has none of {FIGURES[script]}"
        matched.update(fits)
    assert matched == set(range(len(FIGURES[script]))), f"{script}: some figures never came"
    if script == "startup":  # the breakdown's steps are timed by the training loop's events
        parts = {r["part"]: r["seconds"] for r in records if "part" in r}
        assert parts["first step"] > 0 and parts["other steps"] > 0


def test_data_folder_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv(harness.DATA_ENV, raising=False)
    assert harness.data_dir(argparse.Namespace(data=None)) == harness.ROOT.parent / "shared" / "data"
    monkeypatch.setenv(harness.DATA_ENV, str(tmp_path / "env"))
    assert harness.data_dir(argparse.Namespace(data=None)) == tmp_path / "env"  # the variable next
    given = argparse.Namespace(data=str(tmp_path / "arg"))
    assert harness.data_dir(given) == tmp_path / "arg"  # --data first


def test_missing_data_file_is_one_clear_line(tmp_path):
    with pytest.raises(SystemExit) as e:
        harness.data_file(argparse.Namespace(data=str(tmp_path)), "tinyshakespeare.txt")
    message = str(e.value.code)
    assert "\n" not in message and str(tmp_path / "tinyshakespeare.txt") in message
    assert "--data" in message and harness.DATA_ENV in message


def test_median_of_runs_alternates_and_keeps_every_run():
    calls = []
    whats = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = harness.median_of_runs(whats, 3, warmup=1)
    assert calls == ["a", "b"] * 4  # a warm-up round, then three timed ones, each in turn
    assert [len(t.values) for t in times.values()] == [3, 3] and all(len(t.cpu) == 3 for t in times.values())
    one = harness.median_of_runs([sys.executable, "-c", "pass"], 2)  # a command: a fresh process each run
    assert len(one.values) == 2 and one.median > 0 and one.cpu_median is not None
    assert harness.Runs([3.0, 1.0, 2.0, 10.0]).median == 2.5


def test_a_failing_command_stops_with_its_error():
    with pytest.raises(SystemExit) as e:
        harness.median_of_runs([sys.executable, "-c", "raise SystemExit('no such model')"], 1)
    assert "no such model" in str(e.value.code)


def test_tables_are_made_from_the_records():
    records = [harness.record({"name": "predict", "wall_s": 0.25}, "fp32", 1),
               harness.record({"name": "import torch", "wall_s": 1234.5}, "fp32", 1)]  # fmt: skip
    table = harness.markdown(records).splitlines()
    assert table[0] == "| name | wall_s |"  # the fixed fields, the same in every row, left out
    assert table[1] == "| --- | ---: |" and table[3] == "| import torch | 1,234 |"
