"""Generation speed on both engines: chars/s for one stream and for a batch of samples, and
whether the cost per character stays flat (10,000 characters should take 10x as long as 1,000).

Generation reads the prefix once and then feeds one character at a time with the recurrent
state carried, so every character costs the same; a generator that re-ran the prefix would
grow quadratically. This times `charnext.api.generate_stream` (no printing) on the numpy and
the torch engine, for each number of samples, for 1,000 and 10,000 characters, all
alternately (so that a busy machine slows each alike), takes the median of several runs, and
prints chars/s of wall and CPU time, the numpy/torch ratio, and, for reference, the speed the
bare matrix products of the same shapes allow (numpy, one thread): what an engine with no
overhead at all would reach, row-major (`of_bound`) and gate-major (`of_bound_gm`, the layout
the numpy engine uses).

    python benchmarks/generation_scaling.py                         # 2x256 LSTM, 1 and 64 samples
    python benchmarks/generation_scaling.py --checkpoint shake.pt --runs 5 --num-samples 1 8 64
    python benchmarks/generation_scaling.py --steps 0 --lengths 200 1000 --runs 1   # a quick look

The default model trains on tinyshakespeare.txt of the data folder; with --steps 0 it is the
untrained test model and no data is read. One JSON line per engine and number of samples.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import harness


def model_path(a) -> Path:
    """The checkpoint to time: the one given, or a 2x256 LSTM trained for a few steps (with
    --steps 0, the untrained test model: the same arithmetic, no training time)."""
    if a.checkpoint:
        return Path(a.checkpoint)
    if a.steps == 0:
        return harness.untrained_lstm(harness.SHAKESPEARE_CHARS, a.hidden_size, a.num_layers, tiny=a.smoke)
    from charnext import api

    text = harness.read_data(a, "tinyshakespeare.txt", 50_000)
    path = Path(a.folder) / "bench.pt"
    harness.say(f"training a {a.num_layers}x{a.hidden_size} LSTM for {a.steps} steps ...")
    api.train(text, out=path, hidden_size=a.hidden_size, num_layers=a.num_layers, steps=a.steps,
              seq_len=64, batch_size=16, precision="fp32", device="cpu", val_fraction=0.0)  # fmt: skip
    return path


def generation(ckpt, n: int, samples: int, a):
    """One generation of `n` characters for each of `samples`, to be timed."""
    from charnext import api
    from charnext.config import SampleConfig

    sample = SampleConfig(temperature=a.temperature, seed=0)

    def run() -> None:
        count = sum(1 for _ in api.generate_stream(ckpt, a.prefix, n, sample, samples))
        assert count == n, count

    return run


def bare_products(config, samples: int, n: int, gate_major: bool = False):
    """`n` steps of the matrix products alone, to be timed beside the generations: per layer
    the input and recurrent products, then the head, for `samples` rows (numpy). Row-major,
    (samples, H) @ (H, gates), as the issue that set the bar measured them; or gate-major,
    (gates, H) @ (H, samples), as the numpy engine lays out its results (it hands BLAS the
    row-major problem, which writes them so)."""
    import numpy as np

    H, V, L = config.hidden_size, config.vocab_size, config.num_layers
    G = {"rnn": 1, "gru": 3, "lstm": 4}[config.cell.value] * H
    rng = np.random.default_rng(0)
    h = rng.standard_normal((samples, H), dtype=np.float32)
    # distinct matrices, as in the model: the same memory to read as well as the same arithmetic
    weights = [rng.standard_normal((H, G), dtype=np.float32) for _ in range(2 * L - 1)]  # the
    head = rng.standard_normal((H, V), dtype=np.float32)  # first layer's input is a table lookup
    if gate_major:
        h = np.ascontiguousarray(h.T)
        weights = [np.ascontiguousarray(w.T) for w in weights]
        head = np.ascontiguousarray(head.T)

    def run() -> None:
        for _ in range(n):
            for w in weights:
                w @ h if gate_major else h @ w
            head @ h if gate_major else h @ head

    return run


def matmul_bound(config, samples: int, seconds_budget: float, gate_major: bool = False) -> float:
    """Characters a second that the bare products of one step allow, over `seconds_budget`."""
    run = bare_products(config, samples, 20, gate_major)
    run()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds_budget:
        run()
        n += 20
    return samples * n / (time.perf_counter() - t0)


def in_rounds(runs, rounds: int) -> list[list[float]]:
    """Each of `runs` timed once a round, one after another, `rounds` times: the seconds of
    each, per round (the things compared are timed within a second of each other)."""
    times = []
    for _ in range(rounds):
        took = []
        for run in runs:
            t0 = time.perf_counter()
            run()
            took.append(time.perf_counter() - t0)
        times.append(took)
    return times


def advancing(ckpt, samples: int, a):
    """A run that draws the next `a.pair_steps` characters of one long generation, the prefix
    already read and the state warm."""
    from charnext import api
    from charnext.config import SampleConfig

    sample = SampleConfig(temperature=a.temperature, seed=0)
    stream = api.generate_stream(ckpt, a.prefix, 10**9, sample, samples)

    def run() -> None:
        for _ in range(a.pair_steps):
            next(stream)

    run()
    return run


def paired_share(ckpt, samples: int, a) -> tuple[float, float]:
    """The share of the bare products' speed that generation reaches, row-major and gate-major,
    measured in pairs: `a.pair_steps` characters of one long generation, then as many steps of
    each bare product, `a.pairs` times in a row; the median of the pairs' ratios. A VM's speed
    moves by a third within seconds, so rates timed seconds apart (as the table's are) gave
    this ratio anywhere from 0.73 to 0.87 in five runs of the same engine (Intel Xeon); each
    pair here is timed within a second."""
    n = a.pair_steps
    runs = (
        advancing(ckpt, samples, a),
        bare_products(ckpt.config, samples, n),
        bare_products(ckpt.config, samples, n, True),
    )
    times = in_rounds(runs, a.pairs)
    return statistics.median(t[1] / t[0] for t in times), statistics.median(t[2] / t[0] for t in times)


def paired_speedup(one, split, samples: int, a) -> float:
    """How many times as fast the split engine `split` generates as `one` (one thread), in pairs
    as paired_share times them: the median of the pairs' ratios."""
    times = in_rounds([advancing(one, samples, a), advancing(split, samples, a)], a.pairs)
    return statistics.median(t[0] / t[1] for t in times)


def _halves_worker(conn, path, samples: int, a) -> None:
    """The other process of halves_speedup: on each order, the next `a.pair_steps` characters of
    its own long generation of `samples` streams (numpy, BLAS on one thread)."""
    from charnext import api

    run = advancing(api.load(path, "cpu", "numpy"), samples, a)
    conn.send(None)  # ready
    while conn.recv() is not None:
        run()
        conn.send(None)


def halves_speedup(path, one, samples: int, a) -> float:
    """How many times as fast two processes generate `samples` streams, each half of them on its
    own, as one process generates them all (`one`, one thread), in pairs as paired_share times
    them: the median of the pairs' ratios. The halves never wait for each other, so this is the
    most any split of one batch across two workers could reach on this machine and engine: each
    half still pays a step's fixed costs (numpy's calls, the draw, generation's Python)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe()
    theirs_count = samples - samples // 2
    worker = context.Process(target=_halves_worker, args=(theirs, path, theirs_count, a), daemon=True)
    worker.start()
    mine.recv()
    half = advancing(one, samples // 2, a)

    def both() -> None:
        mine.send(True)
        half()
        mine.recv()

    try:
        times = in_rounds([advancing(one, samples, a), both], a.pairs)
    finally:
        mine.send(None)
        worker.join()
    return statistics.median(t[0] / t[1] for t in times)


def _products_worker(conn, config, samples: int) -> None:
    """A process of machine_scaling: on each (start, seconds) it is sent, waits for the wall-clock
    instant `start`, does the bare gate-major products for `seconds` and answers its rate."""
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    while (order := conn.recv()) is not None:
        start, seconds = order
        time.sleep(max(0.0, start - time.time()))
        conn.send(matmul_bound(config, samples, seconds, True))


def machine_scaling(config, samples: int, processes: int, seconds_budget: float, rounds: int = 9) -> float:
    """How many times one process's rate `processes` processes reach together, each doing the
    bare gate-major products on its own: the most that splitting a batch across that many
    threads could give on this machine (a VM's cores may share one physical core, or a quota).
    Measured in rounds, each the first process alone and then all of them at once, a second or
    two apart; the median of the rounds' ratios (timed once, minutes apart, it read 0.29 and
    2.55 on the same machine)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    pipes, workers = [], []
    for _ in range(processes):
        mine, theirs = context.Pipe()
        workers.append(context.Process(target=_products_worker, args=(theirs, config, samples), daemon=True))
        workers[-1].start()
        pipes.append(mine)
    ratios = []
    try:
        for _ in range(rounds):
            pipes[0].send((time.time() + 0.05, seconds_budget))
            alone = pipes[0].recv()
            start = time.time() + 0.05
            for pipe in pipes:
                pipe.send((start, seconds_budget))
            ratios.append(sum(pipe.recv() for pipe in pipes) / alone)
    finally:
        for pipe, worker in zip(pipes, workers):
            pipe.send(None)
            worker.join()
    return statistics.median(ratios)


def main() -> None:
    p = harness.parser(__doc__)
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
    p.add_argument("--pairs", type=int, default=30, help="pairs of generation and bare products (0: none)")
    p.add_argument("--pair-steps", type=int, default=200, help="steps of each half of a pair")
    p.add_argument("--split", action="store_true",
                   help="numpy: split a batch's rows across --threads threads, BLAS on one each")  # fmt: skip
    a = p.parse_args()
    harness.smoke(a, steps=0, runs=1, num_samples=[1, 4], lengths=[20, 100], pairs=2, pair_steps=10)
    bound_seconds = 0.05 if a.smoke else 0.4
    blas = 1 if a.split else a.threads
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(blas)

    from charnext import api

    with tempfile.TemporaryDirectory() as folder:
        a.folder = folder
        path = model_path(a)
        ckpts = {engine: api.load(path, "cpu", engine, a.threads if a.split else 1) for engine in a.engines}
        if "torch" in a.engines:
            import torch

            torch.set_num_threads(a.threads)
        c = next(iter(ckpts.values())).config
        harness.say(f"model: {c.cell.value} {c.num_layers}x{c.hidden_size}, {c.vocab_size} chars, "
                    f"{a.threads} CPU thread(s), temperature {a.temperature}, {a.runs} runs")  # fmt: skip
        for ckpt in ckpts.values():
            harness.time_once(generation(ckpt, 200, 1, a))  # warm-up
        short, long = a.lengths
        settings = {
            (engine, samples, n): generation(ckpt, n, samples, a)
            for samples in a.num_samples
            for engine, ckpt in ckpts.items()
            for n in (short, long)
        }
        for samples in a.num_samples:  # the bounds, timed in the same rounds (the speed drifts)
            settings["bound", samples, long] = bare_products(c, samples, long)
            settings["bound_gm", samples, long] = bare_products(c, samples, long, True)
        times = harness.median_of_runs(settings, a.runs)  # all in turn, round after round
        bounds = {samples: samples * long / times["bound", samples, long].median for samples in a.num_samples}
        bounds_gm = {n: n * long / times["bound_gm", n, long].median for n in a.num_samples}
        paired = {  # (row-major, gate-major) share of each engine and number of samples, in pairs
            (engine, samples): paired_share(ckpt, samples, a) if a.pairs else (None, None)
            for engine, ckpt in ckpts.items()
            for samples in a.num_samples
        }
        over_one, halves = {}, {}  # the split engine, and two processes' halves, against one thread
        if a.threads > 1 and a.pairs and "numpy" in a.engines:
            one = api.load(path, "cpu", "numpy", 1)
            if a.split:
                over_one = {n: paired_speedup(one, ckpts["numpy"], n, a) for n in a.num_samples}
            if a.threads == 2:
                halves = {n: halves_speedup(path, one, n, a) for n in a.num_samples if n > 1}
        scaling = None
        if a.threads > 1:
            scaling = machine_scaling(c, max(a.num_samples), a.threads, bound_seconds)
            harness.say(f"{a.threads} processes doing bare products side by side: {scaling:.2f}x one "
                        f"(the most {a.threads} threads could give on this machine)")  # fmt: skip

    records = []
    for samples in a.num_samples:
        for engine in a.engines:
            t_short, t_long = times[(engine, samples, short)], times[(engine, samples, long)]
            wall = samples * long / t_long.median
            figures = {"model": f"{c.cell.value} {c.num_layers}x{c.hidden_size}", "engine": engine,
                       "split": a.split, "samples": samples, "chars": long, "chars_per_sec": wall,
                       "cpu_chars_per_sec": samples * long / t_long.cpu_median,
                       "long_over_short": t_long.median / t_short.median, "matmul_bound": bounds[samples],
                       "of_bound": wall / bounds[samples], "matmul_bound_gm": bounds_gm[samples],
                       "of_bound_gm": wall / bounds_gm[samples],
                       "of_bound_paired": paired[engine, samples][0],
                       "of_bound_gm_paired": paired[engine, samples][1], "machine_scaling": scaling,
                       "over_one_thread_paired": over_one.get(samples) if engine == "numpy" else None,
                       "halves_paired": halves.get(samples) if engine == "numpy" else None,
                       "runs_s": t_long.values}  # fmt: skip
            records.append(harness.emit(a, figures, precision="fp32", threads=a.threads))
    harness.table(records, ["engine", "samples", "chars_per_sec", "cpu_chars_per_sec", "long_over_short",
                            "matmul_bound", "of_bound", "of_bound_gm", "of_bound_paired"])  # fmt: skip
    if len(a.engines) == 2:
        rate = {(r["engine"], r["samples"]): r["chars_per_sec"] for r in records}
        for samples in a.num_samples:
            harness.say(f"{samples} sample(s): numpy / torch = "
                        f"{rate['numpy', samples] / rate['torch', samples]:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
