"""The cold-start gap of a stream model: what it loses when it starts reading from nothing.

    python benchmarks/cold_start.py shake.pt tinyshakespeare.txt
    python benchmarks/cold_start.py shake.pt tinyshakespeare.txt --primes ',\\n,\\n\\n'
    python benchmarks/cold_start.py --smoke      # the untrained test model, a slice of the data

A user's prompt (`charnext predict "ROMEO:"`) is read from the model's start: the zero state,
then the checkpoint's prime. Training mostly reads from a state carried along the text. The
gap between the two is measured on the speeches of the held-out part (the text's last 10%, as
`charnext train` holds it out): a speech begins after a blank line. For each speech, its first
16 characters are read and the prediction after each is scored (16 predictions, of characters
2 to 17):

- cold: read from the start (zero state, then the prime), as `predict` reads a prompt;
- warm: the same characters read with the state carried through the whole held-out part.

The gap is cold minus warm, in nats per character. Each prime in --primes is measured; the
first row is the checkpoint's own. The last column says whether `predict "ROMEO:"` predicts
`:` after `ROMEO` and a newline after `:`. One JSON line per prime.
"""

from __future__ import annotations

import json
from pathlib import Path

import harness
import numpy as np
import torch

from charnext import api
from charnext.inference.steps import Reader, Start, predict_steps, softmax

READ = 16  # characters of each speech read; the prediction after each is scored
CONTEXT = 2000  # characters read before the held-out part, to warm the carried state


def speech_starts(text: str, lo: int, hi: int) -> list[int]:
    """Offsets in [lo, hi) where a speech begins (after a blank line) with room for READ + 1 characters."""
    out = []
    p = text.find("\n\n", max(lo - 2, 0))
    while p >= 0 and p + 2 + READ + 1 <= hi:
        if p + 2 >= lo and text[p + 2] != "\n":
            out.append(p + 2)
        p = text.find("\n\n", p + 1)
    return out


def nll(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log p(target) for probabilities (..., V) and targets (...)."""
    picked = np.take_along_axis(probs, targets[..., None], axis=-1)[..., 0]
    return -np.log(np.maximum(picked, 1e-30))


def warm_loss(ckpt, text: str, lo: int, starts: list[int]) -> float:
    """Mean loss of the scored characters, read with the state carried from CONTEXT before `lo`."""
    begin = max(0, lo - CONTEXT)
    idx = ckpt.vocab.encode(text[begin:]).long()[None]  # (1, T)
    with torch.no_grad():
        logits, _ = ckpt.model(idx[:, :-1])  # (1, T-1, V): position i predicts text[begin + i + 1]
    probs = torch.softmax(logits[0].double(), dim=-1).numpy()
    rows = np.array([[s + k - begin for k in range(READ)] for s in starts])  # (N, READ): inputs
    targets = idx[0].numpy()[rows + 1]
    return float(nll(probs[rows], targets).mean())


def cold_loss(ckpt, text: str, starts: list[int], prime: str) -> float:
    """Mean loss of the same characters, each speech read from the zero state after `prime`."""
    vocab, runner = ckpt.vocab, ckpt.runner
    x = np.stack([vocab.encode_array(text[s : s + READ]) for s in starts])  # (N, READ)
    y = np.stack([vocab.encode_array(text[s + 1 : s + READ + 1]) for s in starts]).astype(np.intp)
    state = None
    if prime:
        _, state = runner.forward(np.broadcast_to(vocab.encode_array(prime), (len(starts), len(prime))))
    logits, _ = runner.forward(x, state)  # (N, READ, V)
    return float(nll(softmax(logits), y).mean())


def romeo(ckpt, prime: str) -> tuple[str, bool]:
    """`predict "ROMEO:"`'s prediction, and whether it has `:` after ROMEO and a newline after `:`."""
    steps = predict_steps(Reader(ckpt.runner, ckpt.vocab, Start(prime)), "ROMEO:", 1)
    prediction = "".join(s.predicted for s in steps)
    return prediction, prediction[4] == ":" and prediction[5] == "\n"


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("checkpoint", nargs="?", help="the model [with --smoke: the untrained test model]")
    parser.add_argument("text", nargs="?", type=Path, help="the text the model trained on (its last 10%% "
                        "is held out) [default: tinyshakespeare.txt of the data]")  # fmt: skip
    parser.add_argument(
        "--primes", default=None, help="comma-separated primes to compare, \\n for a newline "
        "[default: the checkpoint's own, then '', '\\n' and '\\n\\n']",
    )  # fmt: skip
    args = parser.parse_args()
    if args.checkpoint is None and not args.smoke:
        parser.error("give the checkpoint (or --smoke)")

    torch.set_num_threads(1)
    text = (args.text or harness.data_file(args, "tinyshakespeare.txt")).read_text(encoding="utf-8")
    if args.smoke:
        text = text[:20_000]
        args.checkpoint = args.checkpoint or str(harness.untrained_lstm(text, tiny=True))
    ckpt = api.load(args.checkpoint, engine="torch")
    val_fraction = ckpt.train_config.get("val_fraction") or 0.1
    lo = len(text) - int(len(text) * val_fraction)
    starts = speech_starts(text, lo, len(text))
    own = ckpt.start.prime
    primes = [own] + [p for p in ("", "\n", "\n\n") if p != own]
    if args.primes is not None:
        primes = [p.replace("\\n", "\n") for p in args.primes.split(",")]
    warm = warm_loss(ckpt, text, lo, starts)
    harness.say(f"{args.checkpoint}: {len(starts)} held-out speeches, their first {READ} characters read")
    harness.say(f"warm (state carried along the text): {warm:.4f} nats/char")
    records = []
    for prime in primes:
        cold = cold_loss(ckpt, text, starts, prime)
        prediction, ok = romeo(ckpt, prime)
        figures = {"checkpoint": args.checkpoint, "speeches": len(starts), "prime": prime, "warm": warm,
                   "cold": cold, "gap": cold - warm, "romeo": prediction, "romeo_ok": ok}  # fmt: skip
        records.append(harness.emit(args, figures, precision="fp32", threads=torch.get_num_threads()))
    for r in records:
        r["prime"], r["romeo"] = json.dumps(r["prime"]), r["romeo"].replace("\n", "↵").replace(" ", "␣")
    harness.table(records, ["prime", "cold", "gap", "romeo", "romeo_ok"])


if __name__ == "__main__":
    main()
