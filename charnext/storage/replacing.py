"""What a command may write over: a file charnext wrote, of the kind it writes, or an empty one.

Every command that writes a file (a checkpoint, an export, a metrics log, a report, a page, a
plot) asks `check_replaceable` first, before any long work: an existing file that is not
charnext's of that kind is refused with `OutputExists` (naming it and `--force`), and nothing
is written. Each kind is recognised from the file's first bytes, without torch or pickle:

    checkpoint  a safetensors file whose metadata says "charnext-checkpoint" and that holds
                training state (`resume` or `optimizer`), or a torch file (format 1) that names
                "charnext-checkpoint" in its first megabyte
    export      a "charnext-checkpoint" safetensors file without training state
    metrics     JSON Lines whose first line is a step or validation record
    report      HTML with `<meta name="generator" content="charnext report">` (or, written
                before that marker, the report's title line)
    page        HTML with `<meta name="generator" content="charnext page">` (or the older
                page's tagline)
    plot        an image whose metadata names "charnext inspect --plot" (PNG, PDF, SVG, PS, EPS)

An empty file is replaceable: it holds nothing to lose (the same for a file of zero bytes
left by an interrupted tool). A folder is never replaced here; the writers refuse one.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

from charnext.errors import ConfigError, OutputExists
from charnext.storage import tensorfile
from charnext.storage.validation import FORMAT, PICKLE, ZIP
from charnext.text.paths import shown_path

CHECKPOINT, EXPORT, METRICS, REPORT, PAGE, PLOT = "checkpoint", "export", "metrics", "report", "page", "plot"
NOUN = {  # a kind as the refusal names it: "not a charnext checkpoint", "an export"
    CHECKPOINT: "checkpoint",
    EXPORT: "export",
    METRICS: "metrics log",
    REPORT: "report",
    PAGE: "page",
    PLOT: "loss plot",
}
GENERATOR = {  # the marker each HTML file carries in its <head>
    REPORT: '<meta name="generator" content="charnext report">',
    PAGE: '<meta name="generator" content="charnext page">',
}
_OLDER_HTML = {  # what the same files held before the marker (charnext 0.x), found as surely
    REPORT: "<title>charnext report: ",
    PAGE: '<p class="muted">A charnext next-character model, running in this page',
}
PLOT_CREATOR = "charnext inspect --plot"  # the image's Creator (Software in a PNG)
_HEAD = 1 << 20  # bytes read to recognise a file (a page's marker sits in its first kilobyte)


def check_replaceable(path: str | Path, kind: str, force: bool = False, option: str | None = None) -> None:
    """Refuse (`OutputExists`) to write `kind` over an existing, non-empty file that is not
    charnext's of that kind, unless `force`. A missing path, an empty file, and one of the same
    kind pass; a folder passes too (each writer refuses it with its own advice). `option` names
    the path in the refusal (default: --plot for a plot, else --out; "" for none)."""
    path = Path(path)
    if force or not path.is_file():
        return
    try:
        if path.stat().st_size == 0:
            return
        found = kind_of(path, kind)
    except OSError as e:
        raise ConfigError(f"cannot read {shown_path(path)} to see what it is: {e.strerror or e}") from None
    if found == kind:
        return
    what = f"a charnext {NOUN[found]}, not {_an(NOUN[kind])}" if found else f"not a charnext {NOUN[kind]}"
    option = ("--plot" if kind == PLOT else "--out") if option is None else option
    raise OutputExists(shown_path(path), option, what)


def _an(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def kind_of(path: Path, expected: str | None = None) -> str | None:
    """Which kind of charnext file `path` is (None: none of them). `expected` first checks the
    kind a writer wants, so HTML and images are only searched for when that is the question."""
    with open(path, "rb") as f:
        head = f.read(_HEAD)
    if expected in (REPORT, PAGE):
        text = head.decode("utf-8", errors="replace")
        for html in (REPORT, PAGE):  # a page where a report goes is named as one
            if GENERATOR[html] in text or _OLDER_HTML[html] in text:
                return html
        return None
    if expected == PLOT:
        return PLOT if PLOT_CREATOR.encode() in head or _tail_names_creator(path) else None
    if tensorfile.looks_like(head[:9]):
        return _safetensors_kind(path, head)
    if head.startswith((ZIP, PICKLE)):
        return CHECKPOINT if FORMAT.encode() in head else None
    return METRICS if _metrics_line(head) else None


def _safetensors_kind(path: Path, head: bytes) -> str | None:
    """CHECKPOINT or EXPORT for a charnext safetensors file (by its header alone), else None."""
    (n,) = struct.unpack("<Q", head[:8])
    if n > tensorfile.MAX_HEADER:
        return None
    if 8 + n > len(head):  # a long header (a long history): read just it
        with open(path, "rb") as f:
            f.seek(8)
            raw = f.read(n)
    else:
        raw = head[8 : 8 + n]
    try:
        meta = json.loads(raw.decode("utf-8")).get("__metadata__") or {}
    except (UnicodeDecodeError, ValueError, AttributeError, RecursionError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None
    return CHECKPOINT if "resume" in meta or "optimizer" in meta else EXPORT


def _metrics_line(head: bytes) -> bool:
    """Whether the file starts with a line of the metrics log (a step or validation record)."""
    first = head.split(b"\n", 1)[0]
    try:
        record = json.loads(first.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(record, dict) and record.get("kind") in ("step", "validation")


def _tail_names_creator(path: Path) -> bool:
    """A PDF keeps its Creator in the trailer's Info dictionary, at the end of the file."""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 4096))
        return PLOT_CREATOR.encode() in f.read()


def check_out(path: str | Path, kind: str, force: bool = False) -> Path:
    """`path`, if `kind` ("report", "page", "plot", "checkpoint", "export", "metrics") may be
    written there: refused (OutputExists), before any work, where an existing file is not
    charnext's of that kind, unless `force`; a missing or empty file passes (the API's call;
    train, export and prepare check their own `out`)."""
    check_replaceable(path, kind, force)
    return Path(path)


def write_page(path: str | Path, html: str, kind: str, force: bool = False) -> Path:
    """Write a report's or a page's `html` ("report", "page") to `path`, checked as `check_out`
    does, atomically (the API's call); the path written."""
    write_text(path, html, kind, force)
    return Path(path)


def write_text(path: str | Path, text: str, kind: str, force: bool = False) -> int:
    """Write `text` (UTF-8) to `path` as `kind`, checked as `check_replaceable` does, atomically
    (a temporary file beside it, then a rename): an interrupted write leaves the old file whole.
    Returns the bytes written."""
    path = Path(path)
    check_replaceable(path, kind, force)
    if path.is_dir():
        raise ConfigError(f"cannot write {shown_path(path)}: it is a folder")
    data = text.encode("utf-8")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise ConfigError(f"cannot write {shown_path(path)}: {e.strerror or e}") from None
    try:
        os.chmod(tmp, 0o666 & ~umask())  # the mode of any new file, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {shown_path(path)}: {e.strerror or e}") from None
    return len(data)


def umask() -> int:
    """The process's umask (read by setting it, then restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
