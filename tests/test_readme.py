"""The README's walk-through runs as written, in order, in a fresh folder.

The commands between `<!-- walkthrough -->` and `<!-- /walkthrough -->` in README.md run as one
bash script with the installed `charnext`. Two things change, so that the test is quick and
needs no network: `--max-time` budgets become a few steps of a small model, and each download
(`curl -LO URL`) becomes a copy from ../shared/data when this checkout has it, or a small
text written here when it does not (as on CI).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SHARED = ROOT.parent / "shared" / "data"
SHARED_NAMES = {"input.txt": "tinyshakespeare.txt", "names.txt": "names.txt"}
SMALL_BUDGET = "--steps 8 --eval-every 4 --hidden-size 32 --num-layers 1"

# Stand-ins for the downloads (public-domain lines), long enough for `tail -c 2000`.
PLAY = (
    "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n\n"
    "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\nDeny thy father and refuse thy name.\n\n"
) * 30
NAMES = "\n".join(["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper"] * 15) + "\n"


def walkthrough() -> list[str]:
    """The walk-through's commands, one per line, in order."""
    section = README.split("<!-- walkthrough -->")[1].split("<!-- /walkthrough -->")[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def _download(line: str, folder: Path) -> str:
    """`curl -LO URL` -> a copy of the same text from ../shared/data, or a small stand-in."""
    name = line.split()[-1].rsplit("/", 1)[-1]
    shared = SHARED / SHARED_NAMES.get(name, name)
    if shared.is_file():
        return f"cp {shared} {name}"
    stand_in = folder / f"stand-in-{name}"
    stand_in.write_text(PLAY if name == "input.txt" else NAMES, encoding="utf-8")
    return f"cp {stand_in} {name}"


def test_walkthrough_commands_are_what_a_user_types():
    commands = walkthrough()
    assert commands[0].startswith("mkdir ") and " && cd " in commands[0]  # a fresh folder
    for verb in ("train", "predict", "evaluate", "inspect"):
        assert any(c.startswith(f"charnext {verb} ") for c in commands), verb
    assert any(c.startswith("curl -LO ") for c in commands)
    for c in commands:
        assert c.split()[0] in {"mkdir", "curl", "charnext", "tail"}, c


def test_readme_walkthrough_runs_in_a_fresh_folder(tmp_path):
    bin_dir = Path(sys.executable).parent
    if shutil.which("charnext", path=str(bin_dir)) is None:
        pytest.fail(f"charnext is not installed beside {sys.executable}: pip install -e .")
    script = ["set -euo pipefail"]
    for line in walkthrough():
        if line.startswith("curl -LO "):
            line = _download(line, tmp_path)
        script.append(re.sub(r"--max-time \S+", SMALL_BUDGET, line))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
           "COLUMNS": "80", "NO_COLOR": "1"}  # fmt: skip
    proc = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    tour = tmp_path / "charnext-tour"
    for made in ("input.txt", "shake.pt", "heldout.txt", "romeo.txt", "names.txt", "names.pt"):
        assert (tour / made).is_file(), made
    assert (tour / "romeo.txt").read_text(encoding="utf-8").startswith("ROMEO:")
    assert re.search(r"^seed \d+$", proc.stderr, re.M)  # the first sample names its seed
    assert "per-step prediction" in proc.stdout and "evaluation" in proc.stdout
    assert "loss history" in proc.stdout
    assert "(new)" in proc.stdout or "(in training text)" in proc.stdout  # the names, marked
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (tour / "shake-loss.png").read_bytes()[:4] == b"\x89PNG"


def test_readme_keeps_the_test_command_and_the_notation():
    development = README.split("## Development")[1]
    assert "python -m pytest -q" in development and "make test" in development
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(encoding="utf-8"), re.M)
    assert "`␣` for a space, `↵` for a newline" in README
    for page in ("docs/design.md", "docs/performance.md", "docs/multi-process.md", "docs/loss.png"):
        assert f"({page})" in README and (ROOT / page).is_file(), page


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to dashes."""
    heads = re.findall(r"^#+ (.+)$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_readme_names_nothing_outside_the_repository():
    """Every relative link and every repository path the README names exists in this checkout,
    and every #anchor it links to is a heading there: a user's clone has all it points to."""
    assert "../" not in README
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    paths = set(re.findall(r"`((?:benchmarks|docs|examples|tests|charnext)/[\w./-]+)`", README))
    checked = 0
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        target, _, anchor = link.partition("#")
        page = ROOT / target if target else ROOT / "README.md"
        assert page.exists(), link
        if anchor and page.suffix == ".md":
            assert anchor in _anchors(page.read_text(encoding="utf-8")), link
        checked += 1
    for path in paths:
        assert (ROOT / path).exists(), path
    assert checked > 10 and "benchmarks/plain_lstm_loop.py" in paths | set(links)


def test_the_resume_table_says_what_the_configs_mark():
    """The reference's table of what applies with --resume (docs/reference.md) is the configs'
    resumable marks: each training option of `charnext train` is in the row that its field says."""
    import inspect

    from charnext.cli.app import train
    from charnext.config import RESUMABLE, training_options

    def flags(row: str) -> set[str]:
        return set(re.findall(r"`(--[a-z-]+)`", row))

    readme = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    apply = flags(next(line for line in readme.splitlines() if line.startswith("| apply |")))
    refused = flags(next(line for line in readme.splitlines() if line.startswith("| refused unless equal")))
    options = [name for name in inspect.signature(train).parameters if name in training_options()]
    assert len(options) > 20
    flag = {name: "--" + name.replace("_", "-") for name in options}
    assert {flag[n] for n in options if n in RESUMABLE} == apply & set(flag.values())
    assert {flag[n] for n in options if n not in RESUMABLE} == refused


def test_the_first_two_commands_of_a_fresh_clone(tmp_path):
    """The README's first commands are `make demo` (the main job) and `make test` (the suite,
    as CI runs it); make's dry run shows what each does in a clone with nothing installed."""
    install = README.split("## Install")[1].split("```")[1]
    assert [line.split("#")[0].strip() for line in install.strip().splitlines()] == ["make demo", "make test"]
    if shutil.which("make") is None:
        pytest.skip("make is not installed")

    def dry_run(target: str) -> str:
        venv = tmp_path / f"venv-{target}"
        command = ["make", "--no-print-directory", "-n", target, f"VENV={venv}"]
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)  # as if typed
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    demo, test = dry_run("demo"), dry_run("test")
    for commands in (demo, test):
        assert "-m venv" in commands and "torch==" in commands
        assert commands.index("torch==") < commands.index("-e ")  # torch's build chosen before charnext
    assert 'charnext train "hihello"' in demo and "charnext predict hihell" in demo
    assert '-e ".[test]"' in test and test.rstrip().endswith("python -m pytest -q")
