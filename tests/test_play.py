"""`charnext play`: the typing session, and the terminal app driven through a pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time

import pytest
from typer.testing import CliRunner

from charnext.cli.app import app

ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-B]|[=>78])")


def test_session_predicts_accepts_and_goes_back(hihello):
    from charnext import api
    from charnext.config import SampleConfig

    s = api.play_session(api.load(hihello), SampleConfig(temperature=0.8, seed=0))
    assert s.top() == []  # a stream model predicts only after reading
    assert s.accept() is None
    for ch in "hihel":
        assert s.type(ch)
    assert s.top(1)[0][0] == "l"  # hihel -> l: the lecture's table
    assert s.type("l")
    top = s.top(3)
    assert top[0][0] == "o" and top[0][1] > 0.5 and len(top) == 3
    assert s.accept() == "o" and s.text == "hihello"
    s.backspace()
    assert s.text == "hihell" and s.top(1)[0][0] == "o"  # the state went back too
    assert not s.type("z") and s.text == "hihell"  # not in the vocabulary: nothing changes
    assert len(s.generate(5)) == 5 and len(s.text) == 11  # sampled, seeded
    greedy = api.play_session(api.load(hihello), SampleConfig(temperature=0))
    assert all(greedy.type(ch) for ch in "hihell")
    assert greedy.generate(1) == "o" and greedy.text == "hihello"


def test_play_refuses_without_a_terminal(hihello):
    r = CliRunner().invoke(app, ["play", "-c", str(hihello)], input="hihel")
    assert r.exit_code == 1
    assert "play needs a terminal" in r.output


class Terminal:
    """A child process on a pseudo-terminal of 80x24: write keys, read the screen as text."""

    def __init__(self, argv: list[str]):
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24", "OMP_NUM_THREADS": "1"}
        env.pop("NO_COLOR", None)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child
            os.execvpe(argv[0], argv, env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.output = ""

    def read_until(self, pattern: str, timeout: float = 120.0) -> re.Match:
        """Read until the screen text (escapes removed) since the last mark matches."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = re.search(pattern, ANSI.sub("", self.output), re.S)
            if m:
                return m
            if select.select([self.fd], [], [], 0.2)[0]:
                try:
                    self.output += os.read(self.fd, 65536).decode("utf-8", "replace")
                except OSError:  # the child has gone
                    break
        raise AssertionError(
            f"{pattern!r} never appeared; the screen said:\n{ANSI.sub('', self.output)[-2000:]}"
        )

    def send(self, keys: str) -> None:
        self.output = ""  # what comes next answers these keys
        os.write(self.fd, keys.encode())

    def wait(self, timeout: float = 30.0) -> int:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            if select.select([self.fd], [], [], 0.1)[0]:
                try:
                    self.output += os.read(self.fd, 65536).decode("utf-8", "replace")
                except OSError:
                    pass
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("play did not leave")

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


@pytest.fixture
def terminal(hihello):
    t = Terminal([sys.executable, "-m", "charnext", "play", "-c", str(hihello), "--alternatives", "3"])
    yield t
    t.close()


@pytest.mark.parametrize("leave", ["\x04", "\x03"], ids=["ctrl-d", "ctrl-c"])
def test_play_in_a_pseudo_terminal(terminal, leave):
    terminal.read_until(r"type a character")  # started: the first screen
    terminal.send("hihel")
    first = terminal.read_until(r"hihel▌\s*next:\s*(\S+)\s+█+\s*([\d.]+)%")
    assert first[1] == "l", first[0]  # the lecture's table: after hihel comes l
    terminal.send("l")
    first = terminal.read_until(r"hihell▌\s*next:\s*(\S+)\s+█+\s*([\d.]+)%")
    assert first[1] == "o", first[0]
    assert float(first[2]) > 50
    terminal.send("\t")  # Tab accepts the top prediction
    terminal.read_until(r"hihello▌")
    terminal.send(leave)
    assert terminal.wait() == 0
    assert "hihello" in ANSI.sub("", terminal.output)  # the text is printed on leaving


def test_play_generates_and_deletes(terminal):
    terminal.read_until(r"type a character")
    terminal.send("h")
    terminal.read_until(r"h▌\s*next:")
    terminal.send("\x07")  # Ctrl-G writes --length (40) characters
    m = terminal.read_until(r"(h[hielo]{40})▌")
    assert len(m[1]) == 41
    terminal.send("\x7f\x7f")  # Backspace twice
    terminal.read_until(re.escape(m[1][:-2]) + "▌")
    terminal.send("z")
    terminal.read_until(r"'z' is not in the model's vocabulary")
    terminal.send("\x04")
    assert terminal.wait() == 0


PLAY_WITHOUT_TORCH = """
import json, sys
from typer.testing import CliRunner
from charnext.cli.app import app
from charnext.rendering import play_ui

seen = {"torch at start": "torch" in sys.modules}

def first_prediction(session, out, title, k, length):
    for ch in "hihel":
        session.type(ch)
    seen["top"] = session.top(k)
    seen["torch"] = "torch" in sys.modules
    return ""

play_ui.require_terminal = lambda: None
play_ui.run = first_prediction
r = CliRunner().invoke(app, ["play", "-c", sys.argv[1], "--alternatives", "2"])
print(json.dumps({**seen, "exit": r.exit_code, "output": r.output}))
"""


def test_play_imports_no_torch_from_its_start_to_its_first_prediction(hihello):
    """On the CPU by default play runs on the numpy engine: the command, the checkpoint and the
    first prediction import no torch (it costs seconds before the first frame)."""
    import json
    import subprocess

    proc = subprocess.run([sys.executable, "-c", PLAY_WITHOUT_TORCH, str(hihello)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert seen["exit"] == 0, seen["output"]
    assert seen["top"][0][0] == "l" and len(seen["top"]) == 2  # hihel -> l, two alternatives
    assert not seen["torch at start"] and not seen["torch"]


def test_play_draws_with_temperature_top_k_top_p_and_seed(hihello):
    """Ctrl-G's characters come from the one sampler: seeded, and cut by top-k and top-p."""
    from charnext import api
    from charnext.config import SampleConfig

    ckpt = api.load(hihello)

    def written(**sample) -> str:
        s = api.play_session(ckpt, SampleConfig(**sample))
        s.type("h")
        return s.generate(30)

    greedy = written(temperature=0)
    assert greedy.startswith("ihello")
    assert written(temperature=3.0, seed=1) == written(temperature=3.0, seed=1)  # the seed repeats it
    assert written(temperature=3.0, seed=1) != written(temperature=3.0, seed=2)
    assert written(temperature=3.0, top_k=1, seed=1) == greedy  # top-k 1: only the most likely
    assert written(temperature=3.0, top_p=0.01, seed=2) == greedy  # a tiny top-p: the same
    assert set(written(temperature=3.0, top_k=2, seed=3)) <= set("hielo")


def test_play_refuses_bad_sampling_options(hihello, monkeypatch):
    from charnext.rendering import play_ui

    monkeypatch.setattr(play_ui, "require_terminal", lambda: None)
    r = CliRunner().invoke(app, ["play", "-c", str(hihello), "--top-p", "0"])
    assert r.exit_code == 2 and "--top-p" in r.output
