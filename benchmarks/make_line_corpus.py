"""A second line corpus for the line-mode plan: the function and method names defined in the
Python standard library's own sources, one per line, each once, sorted.

    python benchmarks/make_line_corpus.py --out /tmp/pynames.txt
    python benchmarks/make_line_corpus.py --out /tmp/pynames.txt --stdlib /usr/lib/python3.11

Reproducible: the same stdlib gives the same file (the names are parsed with `ast`, not run,
deduplicated and sorted; the header line printed says how many files and names). Only the
top-level `*.py` files of the stdlib folder are read (no packages, no tests), as the issue's
brief proposes. Like names.txt these are short lines read from the zero state, but with a
different alphabet (lower case, digits, underscores) and structure (`get_`, `_private`).
"""

from __future__ import annotations

import argparse
import ast
import sys
import sysconfig
from pathlib import Path


def function_names(folder: Path) -> tuple[list[str], int]:
    """The distinct function and method names defined in `folder`'s top-level .py files, sorted,
    and how many files were read (files that do not parse are skipped)."""
    names: set[str] = set()
    files = 0
    for path in sorted(folder.glob("*.py")):
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
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="the file to write, one name per line")
    p.add_argument("--stdlib", default=sysconfig.get_paths()["stdlib"], help="the stdlib folder to read")
    a = p.parse_args()
    names, files = function_names(Path(a.stdlib))
    if not names:
        sys.exit(f"no Python sources in {a.stdlib}")
    Path(a.out).write_text("\n".join(names) + "\n", encoding="utf-8")
    print(f"{len(names):,} names from {files} files of {a.stdlib} -> {a.out}")


if __name__ == "__main__":
    main()
