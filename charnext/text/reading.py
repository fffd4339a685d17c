"""Reading texts and lines: UTF-8 files or standard input, fingerprints, the lines of a text
and their hashes. No torch: predict, play and report read their texts here."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from charnext.errors import TextError
from charnext.text.paths import shown_path


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
        raise TextError(f"{shown_path(p)} is a directory, not a text file")
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise TextError(f"no such file: {shown_path(p)}") from None
    except OSError as e:
        raise TextError(f"cannot read {shown_path(p)}: {e.strerror or e}") from None
    return decode_utf8(raw, str(p))


RUN_LOG = ".metrics.jsonl"  # a training run's metrics log (charnext.storage.metrics), written beside it


def folder_files(folder: str | Path) -> list[Path]:
    """The files under `folder`, at any depth, sorted by their path inside it; hidden files and
    folders (a name that begins with a dot) are left out, and links to folders not followed, and
    so are the metrics logs of runs (a run whose --out is in the folder leaves one there)."""
    found = []
    for where, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        kept = [n for n in names if not n.startswith(".") and not n.endswith(RUN_LOG)]
        found += [Path(where, n) for n in kept if Path(where, n).is_file()]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def as_text(raw: bytes) -> str | None:
    """The bytes of a file as text, or None if they are not text: not UTF-8, or holding a NUL
    byte (which UTF-8 allows but no text file has)."""
    if b"\0" in raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def fingerprint(text: str) -> dict:
    """Length and sha256 of a text (of its UTF-8 bytes), to recognise it later."""
    return {"length": len(text), "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()}


def documents_fingerprint(parts: list[dict]) -> dict:
    """One fingerprint for several texts kept apart, from each one's `fingerprint`: their
    length in all, and a sha256 of their lengths and sha256s in order."""
    joined = "\n".join(f"{p['length']} {p['sha256']}" for p in parts)
    return {"length": sum(p["length"] for p in parts), "sha256": hashlib.sha256(joined.encode()).hexdigest()}


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


def named_files(sources: list[Path]) -> list[tuple[Path, Path]]:
    """The files of several files and folders (`train --file`, `prepare`), in order, each with
    the source it came from (itself where it was named; else the folder it was found in), a file
    found twice once; standard input cannot be one of them, and a folder with no files at all is
    an error."""
    files: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    for given in sources:
        if str(given) == "-":
            raise TextError("standard input (-) cannot be one of several files")
        found = folder_files(given) if given.is_dir() else [given]
        if not found:
            raise TextError(f"{shown_path(given)} holds no text files")
        for f in found:
            if f.resolve() not in seen:
                seen.add(f.resolve())
                files.append((f, given))
    return files


def file_size(path: Path) -> int:
    """A named file's size, with the errors a single file always had."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        raise TextError(f"no such file: {path}") from None
    except OSError as e:
        raise TextError(f"cannot read {path}: {e.strerror or e}") from None
