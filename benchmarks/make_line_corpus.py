"""A second line corpus for the line-mode plan: the function and method names defined in the
Python standard library's own sources, one per line, each once, sorted.

    python benchmarks/make_line_corpus.py --out /tmp/pynames.txt
    python benchmarks/make_line_corpus.py --out /tmp/pynames.txt --stdlib /usr/lib/python3.11

Reproducible: the same stdlib gives the same file (the names are parsed with `ast`, not run,
deduplicated and sorted; the header line printed says how many files and names). Only the
top-level `*.py` files of the stdlib folder are read (no packages, no tests), as the issue's
brief proposes. Like names.txt these are short lines read from the zero state, but with a
different alphabet (lower case, digits, underscores) and structure (`get_`, `_private`).
With --smoke only the first 20 files are read, into a temporary file. One JSON line.
"""

from __future__ import annotations

import ast
import sys
import sysconfig
import tempfile
from pathlib import Path

import harness


def function_names(folder: Path, limit: int | None = None) -> tuple[list[str], int]:
    """The distinct function and method names defined in `folder`'s top-level .py files (the
    first `limit` of them, if given), sorted, and how many files were read (files that do not
    parse are skipped)."""
    names: set[str] = set()
    files = 0
    for path in sorted(folder.glob("*.py"))[:limit]:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        files += 1
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("__"):
                names.add(node.name)
    return sorted(names), files


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--out", help="the file to write, one name per line (required but with --smoke)")
    p.add_argument("--stdlib", default=sysconfig.get_paths()["stdlib"], help="the stdlib folder to read")
    p.add_argument("--files", type=int, help="read only the first FILES files [default: all]")
    a = p.parse_args()
    if not a.out and not a.smoke:
        p.error("--out is required")
    harness.smoke(a, files=20)
    names, files = function_names(Path(a.stdlib), a.files)
    if not names:
        sys.exit(f"no Python sources in {a.stdlib}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(a.out or Path(tmp) / "pynames.txt")  # --smoke: a file thrown away
        out.write_text("\n".join(names) + "\n", encoding="utf-8")
    harness.say(f"{len(names):,} names from {files} files of {a.stdlib} -> {out}")
    harness.emit(a, {"names": len(names), "files": files, "stdlib": a.stdlib, "out": str(out)})


if __name__ == "__main__":
    main()
