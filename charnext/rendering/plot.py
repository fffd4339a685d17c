"""Loss curves: smoothing, and an image (`charnext inspect --plot`) drawn with matplotlib if it
is installed (imported only then)."""

from __future__ import annotations

from pathlib import Path

from charnext.errors import ConfigError, MissingDependencyError


def smooth(values: list[float], span: int | None = None) -> list[float]:
    """An exponential moving average of noisy per-step losses, corrected for its start (as
    TensorBoard's smoothing is) so that the first points are not pulled towards zero.

    `span` is the number of recent steps that carry most of the weight; by default a fortieth of
    the run, so that a curve of any length smooths to about the same look."""
    if not values:
        return []
    span = span or max(1, len(values) // 40)
    decay = 1 - 2 / (span + 1)
    out, avg, weight = [], 0.0, 0.0
    for v in values:
        avg = decay * avg + (1 - decay) * v
        weight = decay * weight + (1 - decay)
        out.append(avg / weight)
    return out


def y_range(values: list[float], late: list[float]) -> tuple[float, float]:
    """A loss axis from the lowest value to the highest after the first tenth of the run: the
    untrained model's first losses would otherwise squash the rest of the curve."""
    lo, hi = min(values), max(late or values)
    pad = (hi - lo) * 0.05 or 0.05
    return lo - pad, hi + pad


def _pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no window), imported on first use."""
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError(
            "--plot needs matplotlib, which is not installed: pip install 'charnext[plot]'"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(info: dict, path: str | Path) -> Path:
    """Write the training (and validation) loss curves of `describe(ckpt)` to an image file."""
    path = Path(path)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        train = [(x, y) for x, y in zip(info["history_steps"], info["history"]) if y is not None]
        val = info["validation"]
        points = [(x, y) for x, y in zip(val["steps"], val["loss"]) if y is not None]
        if train:
            xs, ys = zip(*train)
            ax.plot(xs, ys, linewidth=0.6, color="tab:blue", alpha=0.25, label="train loss, per step")
            ax.plot(xs, smooth(list(ys)), linewidth=1.5, color="tab:blue", label="train loss, smoothed")
        if points:
            ax.plot(*zip(*points), "o-", label="validation loss", color="tab:red", markersize=4)
        if train:
            first_tenth = train[0][0] + (train[-1][0] - train[0][0]) / 10
            late = [y for x, y in train + points if x >= first_tenth]
            ax.set_ylim(*y_range([y for _, y in train + points], late))
        m = info["model"]
        ax.set_title(f"{m['cell']} {m['num_layers']}x{m['hidden_size']}, {m['vocab_size']} characters")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats/char)")
        ax.grid(alpha=0.3)
        if train or points:
            ax.legend()
        fig.tight_layout()
        try:
            fig.savefig(path)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot write {path}: {e}") from None
    finally:
        plt.close(fig)
    return path
