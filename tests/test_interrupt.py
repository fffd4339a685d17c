"""Ctrl-C during training writes a resumable checkpoint and exits with 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from charnext.storage.checkpoint import load_raw


def test_sigint_saves_and_resume_continues(tmp_path, poem):
    text = tmp_path / "poem.txt"
    text.write_text(poem, encoding="utf-8")
    out = tmp_path / "run.pt"
    common = ["--file", str(text), "--out", str(out), "--hidden-size", "16", "--num-layers", "1"]
    cmd = [sys.executable, "-m", "charnext", "train", *common, "--steps", "1000000", "--seq-len", "16",
           "--batch-size", "4", "--val-fraction", "0.2", "--eval-every", "5"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    best = tmp_path / "run.best.pt"
    deadline = time.monotonic() + 120
    while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert out.exists(), proc.communicate()  # a check was made, and the latest state saved with it
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (stdout, stderr)
    assert best.exists()  # the best state, held in memory, written on the way out
    assert "Traceback" not in stderr
    assert "interrupted at step" in stderr and "--resume" in stderr
    raw = load_raw(out)
    stopped_at = raw["step"]
    assert stopped_at >= 5 and raw["resume"]["state"] is not None

    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "charnext",
            "train",
            "--file",
            str(text),
            "--resume",
            str(out),
            "--steps",
            str(stopped_at + 3),
            "--json",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert load_raw(out)["step"] == stopped_at + 3
