"""Start-up of two checkouts side by side (before and after a change): import torch, train
hihello, predict, play to its first frame, report -c and --help, each a fresh process, the
commands interleaved; medians of ROUNDS rounds, each with its ratio to import torch.

Each checkout runs with its own `.venv` (charnext installed from it: `pip install -e .`) where it
has one, else with this Python and the checkout first on PYTHONPATH. The before tree may have
the flat layout of 0.1.0 (charnext/cli.py) or the rooms of 0.2.0.

    python benchmarks/startup_compare.py OLD_CHECKOUT NEW_CHECKOUT 5
    python benchmarks/startup_compare.py --smoke      # this checkout against itself, one round

One JSON line per command and checkout.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import harness

PLAY_IMPORTS = {
    "flat": "from charnext.cli import main\nfrom charnext import play_ui\n",  # 0.1.0
    "rooms": "from charnext.cli.app import main\nfrom charnext.rendering import play_ui\n",  # 0.2.0 on
}
PLAY_TAIL = """import sys
def first_frame(session, out, title, k=5, length=40, *a, **kw):
    session.type(session.vocab.chars[0])
    session.top(k)
    return ""
play_ui.require_terminal = lambda: None
play_ui.run = first_frame
sys.argv = ["charnext", "play", *sys.argv[1:]]
main()
"""


class Tree:
    """A checkout: its Python, its `charnext` command, the environment they run in, and a folder
    of its own with hi.pt (`charnext train hihello`, made here)."""

    def __init__(self, root: Path, folder: Path, train_options: list[str]):
        venv = root / ".venv" / "bin"
        self.env = None
        if (venv / "python").exists():
            self.py = [str(venv / "python")]
            self.cn = (
                [str(venv / "charnext")] if (venv / "charnext").exists() else [*self.py, "-m", "charnext"]
            )
        else:
            self.py, self.cn = [sys.executable], [sys.executable, "-m", "charnext"]
            self.env = {
                **os.environ,
                "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
            }
        self.layout = "rooms" if (root / "charnext" / "cli" / "app.py").exists() else "flat"
        self.folder = folder
        self.train_options = train_options
        harness.run_command(
            [*self.cn, "train", "hihello", "--out", "hi.pt", *train_options], self.env, folder
        )

    def commands(self, smoke: bool) -> dict[str, harness.Process]:
        """The commands timed, by label (--smoke: train hihello only once, when hi.pt is made, and
        of the rest those that load nothing but a checkpoint)."""
        named = {
            "import torch": [*self.py, "-c", "import torch"],
            "train hihello": [*self.cn, "train", "hihello", "--out", "hi2.pt", *self.train_options],
            "predict hihell": [*self.cn, "predict", "hihell", "-c", "hi.pt"],
            "play, first frame": [*self.py, "-c", PLAY_IMPORTS[self.layout] + PLAY_TAIL, "-c", "hi.pt"],
            "report -c": [*self.cn, "report", "-c", "hi.pt", "--out", "r.html"],
            "--help": [*self.cn, "--help"],
        }
        return {label: harness.Process(cmd, self.env, self.folder) for label, cmd in named.items()
                if not (smoke and label in ("train hihello", "play, first frame", "report -c"))}  # fmt: skip


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("before", nargs="?", type=Path, help="the checkout before (required but with --smoke)")
    p.add_argument("after", nargs="?", type=Path, help="the checkout after (required but with --smoke)")
    p.add_argument("rounds", nargs="?", type=int, default=5, help="rounds of every command [default: 5]")
    a = p.parse_args()
    a.train_options = []
    harness.smoke(a, before=a.before or harness.ROOT, after=a.after or harness.ROOT, rounds=1,
                  train_options=["--steps", "5"])  # fmt: skip
    if a.before is None or a.after is None:
        p.error("give the two checkouts (or --smoke)")
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        for name in ("before", "after"):
            (Path(tmp) / name).mkdir()
            trees[name] = Tree(getattr(a, name).resolve(), Path(tmp) / name, a.train_options)
        interleaved = {(name, label): process for name, tree in trees.items()
                       for label, process in tree.commands(a.smoke).items()}  # fmt: skip
        times = harness.median_of_runs(interleaved, a.rounds)
    records = []
    for (name, label), runs in times.items():
        base = times[name, "import torch"].median
        figures = {"tree": name, "checkout": str(getattr(a, name)), "name": label, "wall_s": runs.median,
                   "over_import_torch": runs.median / base, "runs_s": runs.values}  # fmt: skip
        records.append(harness.emit(a, figures))
    harness.say(f"medians of {a.rounds} rounds (s), ratio to import torch in the same tree")
    harness.table(records, ["name", "tree", "wall_s", "over_import_torch"])


if __name__ == "__main__":
    main()
