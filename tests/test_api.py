"""The Python API: the README's example runs, without Typer or Rich, and says what it shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "api_example.py"


def test_readme_shows_the_example():
    body = EXAMPLE.read_text(encoding="utf-8").split('"""', 2)[2].strip()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert body in readme.split("## Python API", 1)[1]


def test_example_runs_without_typer_or_rich():
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(EXAMPLE)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "prediction: ihello" in out
    assert "loss" in out and "bits/char" in out and "perplexity" in out
    assert "most surprising: 'h' at 11" in out
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "typer" not in imported and "rich" not in imported


def test_api_names_survive_importing_every_submodule():
    """`charnext.train`, `.predict`, `.evaluate`, ... stay the API functions after every module
    of the package is imported: no module is named like an API function."""
    import importlib
    import pkgutil

    import charnext

    modules = {m.name for m in pkgutil.walk_packages(charnext.__path__, "charnext.")}
    assert not {"train", "predict", "evaluate", "generate", "load"} & {m.split(".")[-1] for m in modules}
    for name in modules - {"charnext.__main__"}:
        importlib.import_module(name)
    from charnext import api

    for name in charnext.__all__:
        if name != "__version__":
            assert getattr(charnext, name) is getattr(api, name), name
