"""What a command reads: a text with where it came from (a file, standard input, a literal), or
a folder made by `charnext prepare`. Training records it, so a resumed run can reopen the same
file or folder."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from charnext.text.reading import decode_utf8, read_text

if TYPE_CHECKING:  # the prepared folder's module imports torch: only when one is opened
    from charnext.text.prepare import PreparedData


@dataclass
class Source:
    """A text to train on and where it came from."""

    text: str | None = None  # the text itself (None for a prepared folder)
    prepared: PreparedData | None = None  # a folder made by `charnext prepare`
    kind: str = "text"  # "file", "stdin", "text" (a literal) or "prepared"
    path: Path | None = None  # the file or folder, for kinds "file" and "prepared"

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
        """What the checkpoint keeps: the kind, and the absolute path of a file or folder."""
        return {"kind": self.kind, "path": str(self.path.resolve()) if self.path is not None else None}

    @classmethod
    def stdin(cls) -> Source:
        """Standard input, read whole as UTF-8."""
        return cls(text=decode_utf8(sys.stdin.buffer.read(), "standard input"), kind="stdin")

    @classmethod
    def literal(cls, text: str) -> Source:
        """A text given as it is (on the command line, or by a caller)."""
        return cls(text=text, kind="text")
