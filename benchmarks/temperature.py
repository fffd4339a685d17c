"""Which sampling temperature fits a model: its loss on held-out text at several temperatures.

    python benchmarks/temperature.py shake.pt input.txt          # the last 10% of the text
    python benchmarks/temperature.py shake.pt heldout.txt --all  # all of a held-out file

The loss of softmax(logits / T) on text the model never trained on is lowest at the temperature
whose probabilities are best calibrated; `charnext predict` samples at 1 by default because that
is where a trained model's minimum lies (1.713 nats/char at 1.0 against 1.769 at 0.8 for the
README's 60-second Shakespeare model on 30,000 held-out characters).
"""

from __future__ import annotations

import argparse
import math

import torch

from charnext import api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("text")
    parser.add_argument("--all", action="store_true", help="score the whole file, not its last 10%%")
    parser.add_argument("--chars", type=int, default=30_000, help="characters scored at most")
    parser.add_argument("--temperatures", default="0.5,0.6,0.7,0.8,0.9,1.0,1.1,1.2")
    args = parser.parse_args()

    ckpt = api.load(args.checkpoint)
    text = open(args.text, encoding="utf-8").read()
    held_out = text if args.all else text[len(text) - len(text) // 10 :]
    held_out = "".join(c for c in held_out if c in ckpt.vocab)[: args.chars]
    idx = ckpt.vocab.encode(held_out).long()[None]  # (1, T)
    with torch.no_grad():
        logits, _ = ckpt.model(idx[:, :-1])  # (1, T-1, V)
    targets = idx[0, 1:]
    print(f"{len(held_out):,} held-out characters")
    for t in (float(x) for x in args.temperatures.split(",")):
        log_probs = torch.log_softmax(logits[0].float() / t, dim=-1)
        loss = -log_probs.gather(1, targets[:, None]).mean().item()
        print(f"temperature {t:.2f}: {loss:.4f} nats/char ({loss / math.log(2):.3f} bits/char)")


if __name__ == "__main__":
    main()
