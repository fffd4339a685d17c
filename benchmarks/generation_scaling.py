"""Generation cost per character: 10,000 characters should take about 10x as long as 1,000.

Generation reads the prefix once and then feeds one character at a time with the recurrent
state carried, so every character costs the same; a generator that re-ran the prefix would
grow quadratically. This times `charnext.api.generate` (no printing) for 1,000 and 10,000
characters, alternately, takes the median of several runs of each, and prints chars/s and the
ratio, of the wall time and of the CPU time (which other work on a shared machine disturbs
less), and how the last 1,000 characters of a long run compare with its first 1,000.

    python benchmarks/generation_scaling.py                      # a 2x256 LSTM, briefly trained
    python benchmarks/generation_scaling.py --checkpoint shake.pt --runs 5 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

TEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tinyshakespeare.txt"
FALLBACK = "Tyger Tyger, burning bright,\nIn the forests of the night;\n" * 200


def model_path(a, folder: Path) -> Path:
    """The checkpoint to time: the one given, or a 2x256 LSTM trained for a few steps."""
    from charnext import api

    if a.checkpoint:
        return Path(a.checkpoint)
    text = TEXT.read_text(encoding="utf-8")[:50_000] if TEXT.exists() else FALLBACK
    path = folder / "bench.pt"
    print(f"training a {a.num_layers}x{a.hidden_size} LSTM for {a.steps} steps ...", flush=True)
    api.train(text, out=path, hidden_size=a.hidden_size, num_layers=a.num_layers, steps=a.steps,
              seq_len=64, batch_size=16, precision="fp32", device="cpu", val_fraction=0.0)  # fmt: skip
    return path


def seconds(ckpt, n: int, a, blocks: list | None = None) -> tuple[float, float]:
    """Wall time and CPU time of one generation of `n` characters. The CPU time is what the
    work itself took; the wall time also holds any wait for a core that other work holds.
    `blocks`, if given, receives the wall time of each successive 1,000 characters."""
    from charnext import api
    from charnext.config import SampleConfig

    sample = SampleConfig(temperature=a.temperature, seed=0)
    t0, c0 = time.perf_counter(), time.process_time()
    mark, count = t0, 0
    for _ in api.generate_stream(ckpt, a.prefix, n, sample):
        count += 1
        if blocks is not None and count % 1_000 == 0:
            now = time.perf_counter()
            blocks.append(now - mark)
            mark = now
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert count == n, count
    return elapsed, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="time this checkpoint instead of training one")
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--steps", type=int, default=30, help="training steps of the default model")
    p.add_argument("--prefix", default="ROMEO:\n")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--runs", type=int, default=3, help="timed runs of each length (median)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch's default")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()

    import torch

    from charnext import api

    if a.threads:
        torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as folder:
        ckpt = api.load(model_path(a, Path(folder)), a.device)
        c = ckpt.config
        threads = torch.get_num_threads()
        print(f"model: {c.cell.value} {c.num_layers}x{c.hidden_size}, {len(ckpt.vocab)} chars, "
              f"device {a.device}, {threads} CPU threads, temperature {a.temperature}")  # fmt: skip
        seconds(ckpt, 200, a)  # warm-up
        # the two lengths alternate, so that a busy machine slows both alike
        times: dict[int, list[tuple[float, float]]] = {1_000: [], 10_000: []}
        firsts, lasts = [], []  # the first and the last 1,000 characters of each long run
        for _ in range(a.runs):
            for n in times:
                blocks: list[float] = []
                times[n].append(seconds(ckpt, n, a, blocks))
                if n == 10_000:
                    firsts.append(blocks[0])
                    lasts.append(blocks[-1])
    for i, what in enumerate(("wall", "CPU")):
        print(f"{what} time:")
        medians = {}
        for n, ts in times.items():
            medians[n] = statistics.median(t[i] for t in ts)
            print(f"  {n:>6,} chars: median {medians[n]:.3f} s of {a.runs} "
                  f"({', '.join(f'{t[i]:.3f}' for t in ts)}) = {n / medians[n]:,.0f} chars/s")  # fmt: skip
        ratio = medians[10_000] / medians[1_000]
        verdict = "flat cost per character" if ratio <= 10.5 else "cost grows with length, or a busy machine"
        print(f"  ratio 10,000 / 1,000: {ratio:.2f} (target <= 10.5: {verdict})")
    first, last = statistics.median(firsts), statistics.median(lasts)
    print(f"within the 10,000-character runs: the first 1,000 took {first:.3f} s, the last 1,000 "
          f"{last:.3f} s (medians): {last / first:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
