"""charnext from Python: train from a string, load the checkpoint, predict, generate, evaluate.

Nothing here imports Typer or Rich; the command line is a thin layer over these same calls.

    python examples/api_example.py
"""

import tempfile
from pathlib import Path

import charnext
from charnext import SampleConfig

with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "hi.pt"

    # Train from a string. Options are ModelConfig fields (cell, hidden_size, num_layers, ...)
    # and TrainConfig fields (steps, lr, seq_len, precision, ...); out=None keeps no file.
    result = charnext.train(
        "hihello", out=path, hidden_size=32, num_layers=1, steps=150, lr=0.01, precision="fp32"
    )
    print(f"trained {result.steps} steps: loss {result.loss:.4f}, accuracy {result.accuracy:.0%}")

    # Load it: the model, its vocabulary and its training record. device="auto" picks a GPU.
    ckpt = charnext.load(path, device="cpu")

    # The data of `charnext predict`'s table: the prediction after each character of a prefix.
    pred = charnext.predict(ckpt, "hihell", alternatives=3)
    for step in pred.steps:
        top = ", ".join(f"{c} {p:.2f}" for c, p in step.top)
        print(f"  {step.input} -> {step.predicted} ({step.probability:.3f})   top 3: {top}")
    print("prediction:", pred.prediction)

    # Generate: greedy by default; SampleConfig holds --temperature, --top-k, --top-p, --seed.
    print("greedy:", charnext.generate(ckpt, "hihell", length=8)[0])
    sample = SampleConfig(temperature=1.0, top_k=3, top_p=0.95, seed=42)
    print("sampled:", charnext.generate(ckpt, "hi", length=12, sample=sample, num_samples=2))

    # Evaluate on any text: loss (nats/char), bits/char, perplexity and accuracy.
    ev = charnext.evaluate(ckpt, "hihellohihello")
    print(
        f"loss {ev.loss:.4f} nats/char, {ev.bits_per_char:.4f} bits/char, "
        f"perplexity {ev.perplexity:.3f}, accuracy {ev.accuracy:.0%} over {ev.characters} characters"
    )

    # How surprised the model is by each character (`charnext evaluate --show`).
    view = charnext.surprisal(ckpt, "hihellohihehlo")
    worst = view.most_surprising(1)[0]
    print(
        f"most surprising: {worst.char!r} at {worst.position}, p={worst.prob:.3f}, "
        f"{worst.surprisal:.1f} bits; expected {worst.top[0][0]!r}"
    )
