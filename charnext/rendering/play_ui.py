"""The terminal side of `charnext play`: keys in (cbreak mode), a redrawn screen out (Rich)."""

from __future__ import annotations

import codecs
import os
import select
import sys
import termios
import tty

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from charnext.inside.play import PlaySession
from charnext.rendering.console import require_terminal
from charnext.rendering.widgets import pack, wrapped_cells
from charnext.text.vocab import visible

TAB, CTRL_D, CTRL_G, ESC = "\t", "\x04", "\x07", "\x1b"
BACKSPACE = ("\x7f", "\x08")
ENTER = ("\r", "\n")
CURSOR = "▌"
ROWS = 8  # screen rows of the text so far


def frame(session: PlaySession, title: str, k: int, length: int, message: str, width: int) -> Group:
    """The screen: title and keys, the text so far (its last lines), the top-k as bars."""
    # the keys as whole phrases: a narrow terminal breaks the line between two, never inside one
    phrases = ["Tab accept top", f"Ctrl-G write {length} more", "Backspace", "Ctrl-C or Ctrl-D quit"]
    keys = Text(_joined(phrases, " · ", width), style="dim")
    text = typed_rows(session.text, width)
    bars = Text()
    bars.append("next:\n", style="italic")
    bar_width = max(10, min(40, width - 20))
    top = session.top(k)
    if not top:
        bars.append("  (type a character)\n", style="dim")
    for ch, p in top:
        full = round(p * bar_width)
        bars.append(f"  {visible(ch):>2}  ", style="bold")
        bars.append("█" * full, style="cyan")
        bars.append(" " * (bar_width - full))
        bars.append(f" {p:6.1%}\n")
    return Group(Text(title, style="bold"), keys, Text(), text, Text(), bars, Text(message, style="yellow"))


def typed_rows(typed: str, width: int, rows: int = ROWS) -> Text:
    """The text so far as the last `rows` screen rows, each line folded between words (never
    scrolled sideways, so that a line's start stays in view), line breaks shown as a dim ↵, and
    the cursor after the last character."""
    cells = ((ch, "dim" if ch == "\n" else "bold", "") for ch in typed)  # width - 3: room for the cursor
    folded = list(wrapped_cells(cells, max(8, width - 3), colour=True).split("\n")) if typed else []
    if not typed or typed.endswith("\n"):
        folded.append(Text("  "))
    folded[-1].append(CURSOR, style="blink")
    return Text("\n").join(folded[-rows:])


def run(session: PlaySession, out: Console, title: str, k: int = 5, length: int = 40) -> str:
    """Read keys until Ctrl-C or Ctrl-D, redrawing after each; return the text."""
    require_terminal()
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    message = ""
    try:
        tty.setcbreak(fd)  # keys one at a time, no echo; Ctrl-C still raises KeyboardInterrupt
        with Live(console=out, screen=True, auto_refresh=False, transient=True) as live:
            while True:
                live.update(frame(session, title, k, length, message, out.width), refresh=True)
                data = os.read(fd, 1024)
                if not data:
                    break  # the terminal went away
                message = ""
                keys = decoder.decode(data)
                if ESC in keys:  # arrows and other sequences: drop them with what follows
                    keys = keys[: keys.index(ESC)]
                    while select.select([fd], [], [], 0.01)[0]:
                        os.read(fd, 1024)
                if CTRL_D in keys:
                    session_keys(session, keys[: keys.index(CTRL_D)], length)
                    break
                message = session_keys(session, keys, length)
    except KeyboardInterrupt:
        pass
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    return session.text


def session_keys(session: PlaySession, keys: str, length: int) -> str:
    """Apply keys to the session; a message for the user, or '' (every character typed that
    the vocabulary lacks is named, not only the last)."""
    message = ""
    unknown: list[str] = []
    for key in keys:
        if key == TAB:
            if session.accept() is None:
                message = "nothing predicted yet: type a character first"
        elif key == CTRL_G:
            if not session.generate(length):
                message = "nothing predicted yet: type a character first"
        elif key in BACKSPACE:
            session.backspace()
        elif key in ENTER:
            if not session.type("\n"):
                message = "this model has no line break in its vocabulary"
        elif key.isprintable():
            if not session.type(key) and key not in unknown:
                unknown.append(key)
    if unknown:
        named = [f"'{visible(ch)}'" for ch in unknown]
        listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
        verb = "is" if len(named) == 1 else "are"
        message = f"{listed} {verb} not in the model's vocabulary" + (f"; {message}" if message else "")
    return message


def _joined(phrases: list[str], sep: str, width: int) -> str:
    """`phrases` joined by `sep` in lines of at most `width` cells, broken only between two."""
    return "\n".join(pack(phrases, sep=sep, width=width))
