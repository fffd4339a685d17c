"""--max-time bounds the whole command: counted from the process's start, with what follows
training kept inside it; with --resume, that much more, or what the run has left.

How close a real command comes to its budget is timed by benchmarks/budget_hold.py, not here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from charnext.errors import ConfigError
from charnext.storage import checkpoint as ckpt
from charnext.training.budget import FINISH_GUESS, Budget, process_age

TINY = [
    "--hidden-size",
    "16",
    "--num-layers",
    "1",
    "--precision",
    "fp32",
    "--device",
    "cpu",
    "--seq-len",
    "16",
]
TEXT = "the cat sat on the mat. the dog ran in the fog.\n" * 40


def run(*args):
    """The command line as a user runs it: its own process, whose start --max-time counts from."""
    command = [sys.executable, "-m", "charnext", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, "COLUMNS": "100"})


def test_the_process_age_counts_from_the_process_start():
    """Seconds spent before charnext is imported count: the age is at least the pause."""
    code = (
        "import time; time.sleep(0.4); from charnext.training.budget import process_age; print(process_age())"
    )
    age = float(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    assert age >= 0.4
    assert process_age() > 0


def test_a_budget_keeps_what_came_before_and_what_follows_inside_it():
    started = time.perf_counter() - 3.0  # a command that began 3 s ago (importing, reading, planning)
    b = Budget.of(10.0, started, run_elapsed=4.0)
    assert b.deadline == pytest.approx(started + 10.0)
    assert 6.5 < b.left() <= 7.0
    # the run's clock (4 s already) may go on for what is left, less the guess at the end
    assert b.clock_end == pytest.approx(4.0 + 7.0 - FINISH_GUESS, abs=0.05)
    late = Budget.of(2.0, started)  # begun past its budget: nothing to train
    assert late.clock_end == 0.0 and late.left() < 0
    assert Budget.of(30.0, None, 12.0, more=True).describe() == "30s more"


def test_what_a_resumed_run_has_left():
    b = Budget.left_over(60.0, 45.0, "m.pt")
    assert b.clock_end == 60.0 and b.seconds == 15.0 and b.describe() == "15s left"
    with pytest.raises(
        ConfigError, match="m.pt has used its time budget .* give --max-time T to train for T more"
    ):
        Budget.left_over(60.0, 59.8, "m.pt")


def test_a_resume_goes_on_for_more_or_for_what_is_left(tmp_path):
    """A timed run resumed: with --max-time T it trains T more, and its header says so; without,
    a run that used its budget says that nothing is left, exits non-zero, and changes nothing."""
    out = tmp_path / "m.pt"
    first = run("train", TEXT, "--max-time", "3s", "--out", out, *TINY)
    assert first.returncode == 0, first.stderr
    raw = ckpt.load_raw(out)
    steps, trained = raw["step"], raw["resume"]["elapsed"]
    assert raw["provenance"]["schedule"]["max_time"] < 3.0  # its clock ended inside the command's budget
    before = out.read_bytes()
    nothing = run("train", "--resume", out, TEXT)
    assert nothing.returncode == 1 and out.read_bytes() == before
    said = nothing.stderr.strip()
    assert said.startswith("error: ") and "m.pt has used its time budget" in said and "\n" not in said
    assert said.endswith(
        f"({trained:.0f}s trained): nothing is left to train; give --max-time T to train for T more"
    )
    more = run("train", "--resume", out, TEXT, "--max-time", "8s")  # starting takes a few of them
    assert more.returncode == 0, more.stderr
    assert f"resuming from step {steps:,}, 8s more (--max-time)" in more.stdout
    assert ckpt.load_raw(out)["step"] > steps
