"""Start-up of two checkouts side by side (before and after a change): import torch, train
hihello, predict, play to its first frame, report -c and --help, each a fresh process, the
commands interleaved; medians of ROUNDS rounds, each with its ratio to import torch.

Each checkout needs its own `.venv` with charnext installed from it (`pip install -e .`). The
before tree may have the flat layout of 0.1.0 (charnext/cli.py) or the rooms of 0.2.0.

    python benchmarks/startup_compare.py OLD_CHECKOUT NEW_CHECKOUT 5
"""

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TREES = {"before": sys.argv[1], "after": sys.argv[2]}
N = int(sys.argv[3]) if len(sys.argv) > 3 else 5
PLAY = {
    "before": "from charnext.cli import main\nfrom charnext import play_ui\n",
    "after": "from charnext.cli.app import main\nfrom charnext.rendering import play_ui\n",
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


def t(cmd, cwd):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode:
        print("FAILED", cmd, r.stderr.decode()[-300:])
        return float("nan")
    return time.perf_counter() - t0


env_dir = Path(tempfile.mkdtemp())
res = {}
for name, tree in TREES.items():
    py, cn = f"{tree}/.venv/bin/python", f"{tree}/.venv/bin/charnext"
    d = env_dir / name
    d.mkdir()
    subprocess.run([cn, "train", "hihello", "--out", "hi.pt"], cwd=d, check=True, capture_output=True)
    res[name] = {"py": py, "cn": cn, "d": d, "t": {}}


def cmds(r, name):
    return {
        "import torch": [r["py"], "-c", "import torch"],
        "train hihello": [r["cn"], "train", "hihello", "--out", "hi2.pt"],
        "predict hihell": [r["cn"], "predict", "hihell", "-c", "hi.pt"],
        "play, first frame": [r["py"], "-c", PLAY[name] + PLAY_TAIL, "-c", "hi.pt"],
        "report -c": [r["cn"], "report", "-c", "hi.pt", "--out", "r.html"],
        "--help": [r["cn"], "--help"],
    }


for _i in range(N):
    for name, r in res.items():
        for label, cmd in cmds(r, name).items():
            r["t"].setdefault(label, []).append(t(cmd, r["d"]))
print(f"medians of {N} rounds (s), ratio to import torch in the same tree")
print(f"{'command':20} {'before':>8} {'ratio':>6} {'after':>8} {'ratio':>6}")
for label in res["before"]["t"]:
    row = [label]
    for name in ("before", "after"):
        m = statistics.median(res[name]["t"][label])
        base = statistics.median(res[name]["t"]["import torch"])
        row += [f"{m:8.3f}", f"{m / base:6.2f}"]
    print(f"{row[0]:20} {row[1]} {row[2]} {row[3]} {row[4]}")
