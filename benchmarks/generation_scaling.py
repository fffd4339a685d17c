"""Generation speed on both engines: chars/s for one stream and for a batch of samples, and
whether the cost per character stays flat (10,000 characters should take 10x as long as 1,000).

Generation reads the prefix once and then feeds one character at a time with the recurrent
state carried, so every character costs the same; a generator that re-ran the prefix would
grow quadratically. This times `charnext.api.generate_stream` (no printing) on the numpy and
the torch engine, for each number of samples, for 1,000 and 10,000 characters, all
alternately (so that a busy machine slows each alike), takes the median of several runs, and
prints chars/s of wall and CPU time, the numpy/torch ratio, and, for reference, the speed the
bare matrix products of the same shapes allow (numpy, one thread): what an engine with no
overhead at all would reach.

    python benchmarks/generation_scaling.py                         # 2x256 LSTM, 1 and 64 samples
    python benchmarks/generation_scaling.py --checkpoint shake.pt --runs 5 --num-samples 1 8 64
    python benchmarks/generation_scaling.py --steps 0 --lengths 200 1000 --runs 1   # a quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

TEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tinyshakespeare.txt"
FALLBACK = "Tyger Tyger, burning bright,\nIn the forests of the night;\n" * 200


def model_path(a, folder: Path) -> Path:
    """The checkpoint to time: the one given, or a 2x256 LSTM trained for a few steps (with
    --steps 0, its random initial weights: the same arithmetic, no training time)."""
    from charnext import api

    if a.checkpoint:
        return Path(a.checkpoint)
    text = TEXT.read_text(encoding="utf-8")[:50_000] if TEXT.exists() else FALLBACK
    path = folder / "bench.pt"
    if a.steps == 0:
        from charnext.config import ModelConfig
        from charnext.modeling.model import CharModel
        from charnext.storage import checkpoint
        from charnext.text.vocab import Vocab

        vocab = Vocab.from_text(text)
        config = ModelConfig(vocab_size=len(vocab), hidden_size=a.hidden_size, num_layers=a.num_layers)
        checkpoint.save(path, CharModel(config), vocab)
        return path
    print(f"training a {a.num_layers}x{a.hidden_size} LSTM for {a.steps} steps ...", flush=True)
    api.train(text, out=path, hidden_size=a.hidden_size, num_layers=a.num_layers, steps=a.steps,
              seq_len=64, batch_size=16, precision="fp32", device="cpu", val_fraction=0.0)  # fmt: skip
    return path


def seconds(ckpt, n: int, samples: int, a) -> tuple[float, float]:
    """Wall time and CPU time of one generation of `n` characters for each of `samples`."""
    from charnext import api
    from charnext.config import SampleConfig

    sample = SampleConfig(temperature=a.temperature, seed=0)
    t0, c0 = time.perf_counter(), time.process_time()
    count = 0
    for _ in api.generate_stream(ckpt, a.prefix, n, sample, samples):
        count += 1
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert count == n, count
    return elapsed, cpu


def matmul_bound(config, samples: int, seconds_budget: float = 1.0) -> float:
    """Characters a second that the matrix products of one generation step allow, alone:
    per layer the input and recurrent products, then the head, for `samples` rows (numpy)."""
    import numpy as np

    H, V, L = config.hidden_size, config.vocab_size, config.num_layers
    G = {"rnn": 1, "gru": 3, "lstm": 4}[config.cell.value] * H
    rng = np.random.default_rng(0)
    h = rng.standard_normal((samples, H), dtype=np.float32)
    # distinct matrices, as in the model: the same memory to read as well as the same arithmetic
    weights = [rng.standard_normal((H, G), dtype=np.float32) for _ in range(2 * L - 1)]  # the
    head = rng.standard_normal((H, V), dtype=np.float32)  # first layer's input is a table lookup

    def step():
        for w in weights:
            h @ w
        h @ head

    for _ in range(20):
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds_budget:
        step()
        n += 1
    return samples * n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="time this checkpoint instead of making one")
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--steps", type=int, default=30, help="training steps of the default model (0: untrained)")
    p.add_argument("--prefix", default="ROMEO:\n")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--runs", type=int, default=3, help="timed runs of each setting (median)")
    p.add_argument("--engines", nargs="+", default=["numpy", "torch"], choices=["numpy", "torch"])
    p.add_argument("--num-samples", nargs="+", type=int, default=[1, 64], help="batch sizes to time")
    p.add_argument("--lengths", nargs=2, type=int, default=[1_000, 10_000], metavar=("SHORT", "LONG"))
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch (and numpy's BLAS)")
    a = p.parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(a.threads)

    from charnext import api

    with tempfile.TemporaryDirectory() as folder:
        path = model_path(a, Path(folder))
        ckpts = {engine: api.load(path, "cpu", engine) for engine in a.engines}
        if "torch" in a.engines:
            import torch

            torch.set_num_threads(a.threads)
        c = next(iter(ckpts.values())).config
        print(f"model: {c.cell.value} {c.num_layers}x{c.hidden_size}, {c.vocab_size} chars, "
              f"{a.threads} CPU thread(s), temperature {a.temperature}, {a.runs} runs")  # fmt: skip
        for ckpt in ckpts.values():
            seconds(ckpt, 200, 1, a)  # warm-up
        short, long = a.lengths
        times: dict[tuple, list[tuple[float, float]]] = {}
        for _ in range(a.runs):
            for samples in a.num_samples:
                for engine, ckpt in ckpts.items():
                    for n in (short, long):
                        times.setdefault((engine, samples, n), []).append(seconds(ckpt, n, samples, a))
        bounds = {samples: matmul_bound(c, samples) for samples in a.num_samples}

    def rate(engine, samples, n, i):
        return samples * n / statistics.median(t[i] for t in times[(engine, samples, n)])

    print(f"\n| engine | samples | chars/s ({long:,}, wall) | chars/s (CPU) | {long:,} / {short:,} time |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for samples in a.num_samples:
        for engine in a.engines:
            ratio = rate(engine, samples, short, 0) / rate(engine, samples, long, 0) * long / short
            print(f"| {engine} | {samples} | {rate(engine, samples, long, 0):,.0f} | "
                  f"{rate(engine, samples, long, 1):,.0f} | {ratio:.2f} |")  # fmt: skip
    print()
    for samples in a.num_samples:
        line = f"{samples} sample(s): bare matrix products allow {bounds[samples]:,.0f} chars/s"
        if len(a.engines) == 2:
            r = rate("numpy", samples, long, 0) / rate("torch", samples, long, 0)
            line += f"; numpy / torch = {r:.2f}x"
        for engine in a.engines:
            line += f"; {engine} reaches {rate(engine, samples, long, 0) / bounds[samples]:.0%} of the bound"
        print(line)


if __name__ == "__main__":
    main()
