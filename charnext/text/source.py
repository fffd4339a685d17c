"""What a command reads: a text with where it came from (a file, standard input, a literal),
several files kept apart (given one by one or as folders), or a folder made by `charnext
prepare`. Training records it, so a resumed run can reopen the same files or folder."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from charnext.errors import TextError
from charnext.text.paths import shown_path
from charnext.text.reading import (
    as_text,
    decode_utf8,
    documents_fingerprint,
    fingerprint,
    named_files,
    read_text,
)

if TYPE_CHECKING:  # the prepared folder's module imports torch: only when one is opened
    from charnext.text.prepare import PreparedData


@dataclass
class Source:
    """A text to train on and where it came from."""

    text: str | None = None  # the text itself (None for a prepared folder)
    prepared: PreparedData | None = None  # a folder made by `charnext prepare`
    kind: str = "text"  # "file", "files", "stdin", "text" (a literal) or "prepared"
    path: Path | None = None  # the file or folder, for kinds "file" and "prepared"
    documents: list[str] | None = None  # kind "files": each file's text, kept apart in training
    paths: list[Path] = field(default_factory=list)  # kind "files": the files, in that order
    skipped: int = 0  # files of the folders given that were left out as not UTF-8 text

    @classmethod
    def files(cls, paths: Sequence[str | Path]) -> Source:
        """Files and folders as one corpus, each file a document of its own. A folder gives
        its files at any depth, sorted by path, but hidden ones (see reading.folder_files);
        those that are not UTF-8 text are skipped and counted. A file given twice counts once.
        What comes to a single file is that file, trained on exactly as `Source.file`."""
        files: list[Path] = []
        texts: list[str] = []
        left_out: dict[Path, int] = {}  # a folder's files that are not text
        for f, given in named_files(list(map(Path, paths))):
            text = read_text(f) if f == given else as_text(_read_bytes(f))  # named: its errors are the user's
            if text is None:
                left_out[given] = left_out.get(given, 0) + 1
                continue
            files.append(f)
            texts.append(text)
        for folder, n in left_out.items():
            if not any(f.is_relative_to(folder) for f in files):
                raise TextError(f"{shown_path(folder)} holds no text files ({n} not UTF-8 text)")
        skipped = sum(left_out.values())
        if len(texts) == 1:
            return cls(text=texts[0], kind="file", path=files[0], skipped=skipped)
        return cls(documents=texts, kind="files", paths=files, skipped=skipped)

    def fingerprint(self) -> dict:
        """Length and sha256 of the text, or of the files kept apart (reading.documents_fingerprint);
        a prepared folder's is in its meta.json."""
        if self.prepared is not None:
            return self.prepared.fingerprint
        if self.documents is not None:
            return documents_fingerprint(self.file_records())
        return fingerprint(self.text)

    def file_records(self) -> list[dict]:
        """Kind "files": each file's absolute path, length and sha256, in order."""
        return [
            {"path": str(p.resolve()), **fingerprint(t)} for p, t in zip(self.paths, self.documents or [])
        ]

    @classmethod
    def file(cls, path: str | Path) -> Source:
        """A UTF-8 text file."""
        return cls(text=read_text(path), kind="file", path=Path(path))

    @classmethod
    def folder(cls, path: str | Path) -> Source:
        """A prepared folder (memory-mapped, never read whole)."""
        from charnext.text.prepare import load_prepared

        return cls(prepared=load_prepared(path), kind="prepared", path=Path(path))

    def record(self) -> dict:
        """What the checkpoint keeps: the kind, and the absolute path of a file or folder; for
        several files, each one's path, length and sha256, and how many were skipped."""
        if self.kind == "files":
            return {"kind": "files", "path": None, "files": self.file_records(), "skipped": self.skipped}
        return {"kind": self.kind, "path": str(self.path.resolve()) if self.path is not None else None}

    @classmethod
    def stdin(cls) -> Source:
        """Standard input, read whole as UTF-8."""
        return cls(text=decode_utf8(sys.stdin.buffer.read(), "standard input"), kind="stdin")

    @classmethod
    def literal(cls, text: str) -> Source:
        """A text given as it is (on the command line, or by a caller)."""
        return cls(text=text, kind="text")


def recorded_files(record) -> list[dict] | None:
    """The files a checkpoint's source record lists: several (path, length, sha256 each), or
    one file (its path only); None for a source of another kind."""
    if not isinstance(record, dict):
        return None
    if record.get("kind") == "files" and isinstance(record.get("files"), list):
        return [f for f in record["files"] if isinstance(f, dict)]
    if record.get("kind") == "file" and isinstance(record.get("path"), str):
        return [{"path": record["path"]}]
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise TextError(f"cannot read {shown_path(path)}: {e.strerror or e}") from None
