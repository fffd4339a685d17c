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
    from charnext.inside.play import PlaySession
    from charnext.storage.checkpoint import load

    s = PlaySession(load(hihello))
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
    assert s.generate(1, temperature=0) == "o" and s.text == "hihello"
    assert len(s.generate(5)) == 5 and len(s.text) == 12  # sampled, seeded


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
    t = Terminal([sys.executable, "-m", "charnext", "play", "-c", str(hihello), "--top-k", "3"])
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
