"""Reading texts and lines: UTF-8 files or standard input, fingerprints, the lines of a text
and their hashes. No torch: predict, play and report read their texts here."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from charnext.errors import TextError


def decode_utf8(raw: bytes, source: str) -> str:
    """Bytes -> str, or a TextError naming the byte offset of the first invalid sequence."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = raw[e.start : e.start + 4].hex(" ")
        raise TextError(
            f"{source} is not valid UTF-8: invalid byte sequence at byte offset {e.start} ({bad})"
        ) from None


def read_text(path: str | Path) -> str:
    """A UTF-8 text file, or standard input for `-`."""
    if str(path) == "-":
        return decode_utf8(sys.stdin.buffer.read(), "standard input")
    p = Path(path)
    if p.is_dir():
        raise TextError(f"{p} is a directory, not a text file")
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise TextError(f"no such file: {p}") from None
    except OSError as e:
        raise TextError(f"cannot read {p}: {e.strerror or e}") from None
    return decode_utf8(raw, str(p))


def fingerprint(text: str) -> dict:
    """Length and sha256 of a text (of its UTF-8 bytes), to recognise it later."""
    return {"length": len(text), "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()}


def text_lines(text: str) -> list[str]:
    """Non-empty lines, without their line endings."""
    return [line for line in text.splitlines() if line.strip("\r")]


def line_hash(line: str) -> int:
    """A stable signed 64-bit hash of a line (blake2b), to recognise lines seen in training."""
    digest = hashlib.blake2b(line.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def in_line_index(index: np.ndarray, line: str) -> bool:
    """Whether `line` is one of the lines a checkpoint's line index (sorted hashes) was made from
    (up to hash collisions, about 2^-64)."""
    h = line_hash(line)
    pos = int(np.searchsorted(index, np.int64(h)))
    return pos < len(index) and int(index[pos]) == h
