"""Replay the turn's rule over recorded runs: at which check each run's validation turned up.

The rule (charnext.training.checks.turned_up) reads only a run's checks: their losses and
standard errors, against the best so far. So the metrics logs of earlier runs (`charnext train
--out X.pt` writes X.metrics.jsonl) say where today's rule would have turned them, up to their
first turn (after it a run anneals: its later checks are another run's). Any number of logs:

    python benchmarks/replay_turn.py runs/*.metrics.jsonl
    python benchmarks/replay_turn.py --smoke     # a tiny run of its own, replayed

One JSON line per log: its checks and the step at which the rule turns it (null: never); then a
count on stderr. With --smoke it trains a tiny run for a log (the data folder's text).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import harness

from charnext.training.checks import turned_up


def checks(path: Path) -> list[tuple[int, float, float | None]]:
    """(step, loss, standard error) of each check a metrics log recorded."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else {}
        if row.get("kind") == "validation" and isinstance(row.get("val_loss"), (int, float)):
            out.append((row["step"], row["val_loss"], row.get("val_se")))
    return out


def first_turn(points: list[tuple[int, float, float | None]]) -> int | None:
    """The step of the check at which the rule first fires, or None."""
    best, losses, ses = math.inf, [], []
    for step, loss, se in points:
        best = min(best, loss)
        losses.append(loss)
        ses.append(se)
        if turned_up(losses, ses, best):
            return step
    return None


def smoke_log(a, folder: str) -> Path:
    """A tiny run's metrics log, for --smoke."""
    from charnext import api

    out = Path(folder) / "tiny.pt"
    text = harness.read_data(a, "tinyshakespeare.txt", 20_000)
    api.train(text, out=out, hidden_size=16, num_layers=1, steps=40, eval_every=5, seq_len=16,
              batch_size=4, precision="fp32", device="cpu")  # fmt: skip
    return out.with_suffix(".metrics.jsonl")


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("logs", nargs="*", type=Path, help="metrics logs (X.metrics.jsonl)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        logs = list(a.logs) + ([smoke_log(a, folder)] if a.smoke else [])
        if not logs:
            p.error("give metrics logs (X.metrics.jsonl), or --smoke")
        turned = 0
        for path in logs:
            points = checks(path)
            step = first_turn(points)
            turned += step is not None
            harness.emit(a, {"log": str(path), "checks": len(points), "turns_at": step})
    harness.say(f"{turned} of {len(logs)} runs turn")


if __name__ == "__main__":
    main()
