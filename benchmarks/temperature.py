"""Which sampling temperature fits a model: its loss on held-out text at several temperatures.

    python benchmarks/temperature.py shake.pt input.txt          # the last 10% of the text
    python benchmarks/temperature.py shake.pt heldout.txt --all  # all of a held-out file
    python benchmarks/temperature.py --smoke                     # the untrained test model

The loss of softmax(logits / T) on text the model never trained on is lowest at the temperature
whose probabilities are best calibrated; `charnext predict` samples at 1 by default because that
is where a trained model's minimum lies (1.713 nats/char at 1.0 against 1.769 at 0.8 for the
README's 60-second Shakespeare model on 30,000 held-out characters). One JSON line per
temperature.
"""

from __future__ import annotations

import math
from pathlib import Path

import harness
import torch

from charnext import api


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("checkpoint", nargs="?", help="the model [with --smoke: the untrained test model]")
    parser.add_argument(
        "text", nargs="?", type=Path, help="the text [default: tinyshakespeare.txt of the data]"
    )
    parser.add_argument("--all", action="store_true", help="score the whole file, not its last 10%%")
    parser.add_argument("--chars", type=int, default=30_000, help="characters scored at most")
    parser.add_argument("--temperatures", default="0.5,0.6,0.7,0.8,0.9,1.0,1.1,1.2")
    args = parser.parse_args()
    if args.checkpoint is None and not args.smoke:
        parser.error("give the checkpoint (or --smoke)")
    harness.smoke(args, chars=500, temperatures="0.8,1.0")

    text = (args.text or harness.data_file(args, "tinyshakespeare.txt")).read_text(encoding="utf-8")
    ckpt = api.load(args.checkpoint or harness.untrained_lstm(text, tiny=True))
    held_out = text if args.all else text[len(text) - len(text) // 10 :]
    held_out = "".join(c for c in held_out if c in ckpt.vocab)[: args.chars]
    idx = ckpt.vocab.encode(held_out).long()[None]  # (1, T)
    with torch.no_grad():
        logits, _ = ckpt.model(idx[:, :-1])  # (1, T-1, V)
    targets = idx[0, 1:]
    harness.say(f"{len(held_out):,} held-out characters")
    records = []
    for t in (float(x) for x in args.temperatures.split(",")):
        log_probs = torch.log_softmax(logits[0].float() / t, dim=-1)
        loss = -log_probs.gather(1, targets[:, None]).mean().item()
        figures = {
            "chars": len(held_out),
            "temperature": t,
            "loss": loss,
            "bits_per_char": loss / math.log(2),
        }
        records.append(harness.emit(args, figures, precision="fp32", threads=torch.get_num_threads()))
    harness.table(records, ["temperature", "loss", "bits_per_char"])


if __name__ == "__main__":
    main()
