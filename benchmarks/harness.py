"""What every benchmark shares: its options, the data folder, the median-of-runs timer, the
untrained test model, and one JSON line per result.

Each script in this folder starts with `harness.parser(__doc__)`, which adds

- `--data DIR`: the folder of the shared texts (tinyshakespeare.txt, names.txt, ...). Without
  it, the environment variable CHARNEXT_BENCH_DATA, else `../shared/data` beside the checkout;
- `--jsonl PATH`: also append each result's JSON line to PATH;
- `--smoke`: the smallest settings (tiny texts, few steps, one run), so that CI can run every
  script in seconds (tests/test_benchmarks.py). Its figures mean nothing.

Results go to stdout as JSON lines, one per result, each with `command` (the script and its
arguments), `cpu`, `precision`, `threads` and the figures; everything meant for a person (progress,
tables) goes to stderr. Tables are made from the lines, never copied by hand:

    python benchmarks/startup.py --runs 7 > startup.jsonl
    python benchmarks/harness.py table startup.jsonl                 # every figure
    python benchmarks/harness.py table startup.jsonl name wall_s     # some

This module imports neither torch nor numpy, so that a script can set thread counts first.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]  # the checkout
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DATA_ENV = "CHARNEXT_BENCH_DATA"
FIXED_KEYS = ("command", "cpu", "precision", "threads")  # in every JSON line, before the figures
# tinyshakespeare's 65 characters: the vocabulary of the untrained model where no text is read
SHAKESPEARE_CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

Command = Sequence[str]


@dataclass
class Process:
    """A command with an environment and a folder of its own."""

    cmd: Command
    env: dict | None = None  # None: this process's
    cwd: str | Path | None = None  # None: this process's


What = Callable[[], Any] | Command | Process  # a callable, or a command run as a fresh process


# -- options and data -------------------------------------------------------------------------


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares (--data, --jsonl, --smoke)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = p.add_argument_group("shared benchmark options")
    shared.add_argument(
        "--data",
        metavar="DIR",
        help=f"folder of the shared texts [default: ${DATA_ENV}, else {os.path.relpath(DEFAULT_DATA)}]",
    )
    shared.add_argument("--jsonl", metavar="PATH", help="also append each result's JSON line to PATH")
    shared.add_argument(
        "--smoke", action="store_true", help="the smallest settings, for CI: figures mean nothing"
    )
    return p


def data_dir(args: argparse.Namespace | None = None) -> Path:
    """The data folder: --data, else $CHARNEXT_BENCH_DATA, else ../shared/data beside the checkout."""
    given = getattr(args, "data", None) or os.environ.get(DATA_ENV)
    return Path(given) if given else DEFAULT_DATA


def data_file(args: argparse.Namespace | None, name: str) -> Path:
    """A file of the data folder; a one-line error (exit 1) when it is not there."""
    path = data_dir(args) / name
    if not path.is_file():
        sys.exit(f"benchmark data missing: {path} (give --data DIR or set {DATA_ENV})")
    return path


def read_data(args: argparse.Namespace | None, name: str, chars: int | None = None) -> str:
    """The text of a data file (its first `chars` characters if given)."""
    return data_file(args, name).read_text(encoding="utf-8")[:chars]


def smoke(args: argparse.Namespace, **smallest: Any) -> None:
    """With --smoke, set these options to their smallest values (what was given is overridden)."""
    if args.smoke:
        for name, value in smallest.items():
            setattr(args, name, value)


def say(*parts: Any) -> None:
    """A line for the person at the terminal (stderr: stdout carries only JSON lines)."""
    print(*parts, file=sys.stderr, flush=True)


# -- the timer ---------------------------------------------------------------------------------


@dataclass
class Runs:
    """Figures of repeated runs: each run's (`values`; for a timed run its wall seconds, with the
    CPU seconds it used in `cpu`) and their medians."""

    values: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.cpu) if self.cpu else None

    def add(self, value: float, cpu: float | None = None) -> None:
        self.values.append(value)
        if cpu is not None:
            self.cpu.append(cpu)


def run_command(cmd: Command, env: dict | None = None, cwd: str | Path | None = None) -> str:
    """Run a command to its end; its stdout. A failure stops the benchmark with its stderr's end."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, env=env, cwd=cwd)
    if proc.returncode != 0:
        tail = proc.stderr.strip()[-2000:]
        sys.exit(f"failed ({proc.returncode}): {shlex.join(map(str, cmd))}\n{tail}")
    return proc.stdout


def time_once(what: What, env: dict | None = None, cwd: str | Path | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of `what`: a callable (this
    process's CPU time) or a command (a fresh process, output thrown away; its CPU time), in
    `env` and `cwd` unless a Process brings its own. On a machine busy with other work the first
    grows with the wait, the second hardly."""
    if callable(what):
        t0, c0 = time.perf_counter(), time.process_time()
        what()
        return time.perf_counter() - t0, time.process_time() - c0
    if isinstance(what, Process):
        what, env, cwd = what.cmd, what.env if what.env is not None else env, what.cwd or cwd
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(list(what), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip()[-2000:]
        sys.exit(f"failed ({proc.returncode}): {shlex.join(map(str, what))}\n{tail}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_of_runs(
    whats: What | dict[str, What],
    runs: int,
    warmup: int = 0,
    env: dict | None = None,
    cwd: str | Path | None = None,
) -> Runs | dict[str, Runs]:
    """Time `whats` (a callable or a command) `runs` times, after `warmup` untimed runs: every
    run's wall and CPU seconds, and their medians. Given a dict of them (name -> callable or
    command), each is run in turn, round after round, so that a busy moment hits all alike; then
    a dict of Runs."""
    several = isinstance(whats, dict)
    named: dict[str, What] = whats if several else {"": whats}  # type: ignore[assignment]
    out = {name: Runs() for name in named}
    for i in range(warmup + runs):
        for name, what in named.items():
            wall, cpu = time_once(what, env, cwd)
            if i >= warmup:
                out[name].add(wall, cpu)
    return out if several else out[""]


# -- the test model ----------------------------------------------------------------------------

TEST_MODEL = {"cell": "lstm", "hidden_size": 256, "num_layers": 2, "embedding_size": 64}
TINY_MODEL = {"cell": "lstm", "hidden_size": 32, "num_layers": 1, "embedding_size": 16}  # for --smoke


def cache_dir() -> Path:
    """Where models built here are kept between runs (the temporary folder's charnext-bench)."""
    path = Path(tempfile.gettempdir()) / "charnext-bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def untrained_lstm(text: str, hidden_size: int = 256, num_layers: int = 2, tiny: bool = False) -> Path:
    """The test model: a 2x256 LSTM (embedding 64; another width or depth if asked, a 1x32 one
    if `tiny`, as for --smoke) over the characters of `text` (in their order of first
    appearance), untrained: the arithmetic of the default model with no training time. Written
    once through `charnext.train` (one seeded step at a negligible learning rate) and reused from
    the cache folder."""
    from charnext import api
    from charnext.config import ModelConfig, TrainConfig
    from charnext.version import __version__

    shape = TINY_MODEL if tiny else {**TEST_MODEL, "hidden_size": hidden_size, "num_layers": num_layers}
    chars = "".join(dict.fromkeys(text))
    key = hashlib.sha256(f"{__version__}\0{shape}\0{chars}".encode()).hexdigest()[:16]
    path = cache_dir() / f"lstm-{shape['num_layers']}x{shape['hidden_size']}-{key}.pt"
    if path.is_file():
        return path
    seq_len = 8
    corpus = chars * (2 * seq_len // max(len(chars), 1) + 2)  # a window and its targets
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        out = Path(tmp) / "model.pt"
        api.train(corpus, out, model=ModelConfig(**shape), config=TrainConfig(
            steps=1, lr=1e-12, seq_len=seq_len, batch_size=1, val_fraction=0.0, device="cpu",
            precision="fp32", seed=0))  # fmt: skip
        os.replace(out, path)  # whole or not at all, for a script running beside this one
    return path


# -- the browser -------------------------------------------------------------------------------


def browser_missing() -> str | None:
    """What the page benchmarks and the browser tests lack to open a browser (Selenium,
    Debian's chromium and chromium-driver), in one line; None: nothing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for tool in ("chromium", "chromedriver"):
        if not shutil.which(tool):
            return f"{tool} is not installed (apt-get install chromium chromium-driver)"
    return None


def require_browser() -> None:
    """A one-line error (exit 1) where there is no browser to open."""
    missing = browser_missing()
    if missing:
        sys.exit(f"no browser: {missing}")


@contextmanager
def browser(*options: str, log: bool = False) -> Iterator:
    """A fresh headless Chromium through Selenium, quit after the block (a one-line error where
    there is none); `log`: with its console and DevTools' performance log (every request).

    Its profile and temporary files lie in a folder with a short path, whatever TMPDIR is:
    Chromium keeps Unix sockets there, and a socket's path may not exceed 107 bytes (a long
    TMPDIR kills Chromium at start)."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="charnext-chromium-", dir="/tmp" if os.path.isdir("/tmp") else None)
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--no-first-run", f"--user-data-dir={profile}", *options):  # fmt: skip
        opts.add_argument(arg)
    if log:
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = Service(shutil.which("chromedriver"), env={**os.environ, "TMPDIR": profile})
    try:
        driver = webdriver.Chrome(service=service, options=opts)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


# -- results -----------------------------------------------------------------------------------


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def threads_from_env() -> int | None:
    """OMP_NUM_THREADS if set (torch and numpy's BLAS follow it, here and in fresh processes),
    else None: each library's own default. A script that times torch in this process says
    `torch.get_num_threads()` instead."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() else None


def command_line() -> str:
    """The script as run, with its arguments, its path from the checkout's root."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return shlex.join([str(shown), *sys.argv[1:]])


def record(figures: dict, precision: str | None = None, threads: int | None = None) -> dict:
    """One result: the fixed fields, then the figures."""
    return {
        "command": command_line(),
        "cpu": cpu_name(),
        "precision": precision,
        "threads": threads if threads is not None else threads_from_env(),
        **figures,
    }


def emit(
    args: argparse.Namespace, figures: dict, precision: str | None = None, threads: int | None = None
) -> dict:
    """Print one result as a JSON line on stdout (and append it to --jsonl); the record."""
    rec = record(figures, precision, threads)
    line = json.dumps(rec, ensure_ascii=False, default=str)
    print(line, flush=True)
    if getattr(args, "jsonl", None):
        with open(args.jsonl, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    return rec


def shown(value: Any) -> str:
    """A figure as a table shows it: thousands grouped, four significant digits below 1,000."""
    if isinstance(value, (list, tuple)):
        return ", ".join(shown(v) for v in value)
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", "\\n")


def markdown(records: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """A Markdown table of records: the given columns, or every figure (the fixed fields left
    out where they are the same in every row)."""
    if columns is None:
        columns = []
        for rec in records:
            columns += [k for k in rec if k not in columns]
        columns = [k for k in columns if k not in FIXED_KEYS or len({str(r.get(k)) for r in records}) > 1]

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    numeric = [all(number(r.get(c)) for r in records if r.get(c) is not None) for c in columns]
    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---:" if n else "---" for n in numeric) + " |",
    ]
    lines += ["| " + " | ".join(shown(r.get(c)) for c in columns) + " |" for r in records]
    return "\n".join(lines)


def table(records: Sequence[dict], columns: Sequence[str] | None = None) -> None:
    """The records as a Markdown table, for the person at the terminal (stderr)."""
    if records:
        say()
        say(markdown(records, columns))


def main() -> None:
    p = argparse.ArgumentParser(description="A Markdown table from benchmark JSON lines.")
    p.add_argument("action", choices=["table"])
    p.add_argument("file", help="a JSON Lines file the benchmarks wrote (- for stdin)")
    p.add_argument("columns", nargs="*", help="the columns, in order [default: every figure]")
    a = p.parse_args()
    lines = (sys.stdin if a.file == "-" else open(a.file, encoding="utf-8")).read().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    print(markdown(records, a.columns or None))


if __name__ == "__main__":
    main()
