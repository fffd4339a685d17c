"""Paths as a person reads them: relative to the current folder inside it, `~` for the home
folder, absolute otherwise; and shortened in the middle when a line is too narrow for them."""

from __future__ import annotations

import os

ELLIPSIS = "…"


def shown_path(path: str | os.PathLike, home: bool = True) -> str:
    """`path` as messages and tables show it: relative to the current folder when it lies inside
    it, `~/...` when it lies in the home folder, otherwise absolute. Symbolic links are not
    followed, so the path keeps the names the user gave. `home=False` leaves out the `~` (for a
    command to copy, where a quoted `~` would not expand)."""
    full = os.path.abspath(os.fspath(path))
    try:
        cwd = os.getcwd()
    except OSError:  # the current folder was deleted
        cwd = None
    if cwd is not None and cwd != os.sep:
        rel = _inside(full, cwd)
        if rel is not None:
            return rel or "."
    folder = os.path.expanduser("~")
    if home and folder not in ("~", os.sep):
        rel = _inside(full, folder)
        if rel is not None:
            return "~" + (os.sep + rel if rel else "")
    return full


def absolute_path(path: str | os.PathLike) -> str:
    """`path` made absolute (for JSON: the full path, whatever the current folder)."""
    return os.path.abspath(os.fspath(path))


def _inside(full: str, folder: str) -> str | None:
    """`full` relative to `folder` ("" for the folder itself), or None when it lies outside."""
    folder = os.path.abspath(folder)
    if full == folder:
        return ""
    prefix = folder.rstrip(os.sep) + os.sep
    return full[len(prefix) :] if full.startswith(prefix) else None


def shorten_middle(text: str, width: int, cell_len=len) -> str:
    """`text` in at most `width` cells: whole if it fits; else its middle replaced by `…`. A path
    is cut between folder names, keeping its file name and as many folders at each end as fit
    (`/home/me/…/runs/run.pt`); only a name that alone is too wide is cut inside."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    parts = text.split("/")
    if len(parts) > 2:
        # the most trailing names that fit after a leading `…/`, then the most leading ones
        best = None
        for k in range(1, len(parts)):
            tail = "/".join(parts[-k:])
            if cell_len(ELLIPSIS + "/" + tail) > width:
                break
            for j in range(len(parts) - k - 1, -1, -1):
                head = "/".join(parts[:j]) + "/" if j else ""
                candidate = head + ELLIPSIS + "/" + tail
                if cell_len(candidate) <= width:
                    best = candidate
                    break
        if best is not None:
            return best
    if len(parts) > 1:  # not even `…/name` fits: the file name alone, cut in its middle
        text = parts[-1]
        if cell_len(text) <= width:
            return ELLIPSIS + _take(text[::-1], width - 1, cell_len)[::-1]
    # a plain cut: the start and the end of the text, the end a little longer (it names the file)
    head_w = (width - 1) // 2
    tail_w = width - 1 - head_w
    head = _take(text, head_w, cell_len)
    tail = _take(text[::-1], tail_w, cell_len)[::-1]
    return head + ELLIPSIS + tail


def _take(text: str, width: int, cell_len) -> str:
    """The longest start of `text` at most `width` cells wide."""
    out = ""
    for ch in text:
        if cell_len(out + ch) > width:
            break
        out += ch
    return out
