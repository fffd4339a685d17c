"""Loss curves as an image (`charnext inspect --plot`), drawn with matplotlib if it is installed
(imported only then)."""

from __future__ import annotations

from pathlib import Path

from charnext.errors import ConfigError, MissingDependencyError
from charnext.inside.curves import loss_axis, smooth
from charnext.text.paths import shown_path


def y_range(points: list[tuple[float, float]]) -> tuple[float, float]:
    """The image's loss axis: `loss_axis` (after the first tenth of the run), with a margin."""
    lo, hi = loss_axis(points)
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


# the maker named in the image, by which `--plot` knows its own file again; the same text as
# storage/replacing.py's PLOT_CREATOR (a test holds them equal: a view does not import storage)
PLOT_CREATOR = "charnext inspect --plot"


def _marked(path: Path) -> dict | None:
    """The image's metadata naming charnext as its maker, in the key its format has (the
    formats without metadata, JPEG or TIFF, get none: replacing one then needs --force)."""
    fmt = path.suffix.lower().lstrip(".") or "png"
    if fmt == "png":
        return {"Software": PLOT_CREATOR}
    return {"Creator": PLOT_CREATOR} if fmt in ("pdf", "svg", "ps", "eps") else None


def plot_history(info: dict, path: str | Path) -> Path:
    """Write the training (and validation) loss curves of `describe(ckpt)` to an image file:
    `path` itself, whose suffix says the format (PNG where it has none). The command checks
    first that `path` may be replaced (`api.check_out(path, "plot")`)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--plot {shown_path(path)} is a folder; give the image's name, e.g. loss.png")
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
            ax.set_ylim(*y_range(train + points))
        m = info["model"]
        ax.set_title(f"{m['cell']} {m['num_layers']}x{m['hidden_size']}, {m['vocab_size']} characters")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats/char)")
        ax.grid(alpha=0.3)
        if train or points:
            ax.legend()
        fig.tight_layout()
        try:
            # a format named, so that matplotlib writes `path` itself (without one, `loss` became `loss.png`)
            fig.savefig(path, format=None if path.suffix else "png", metadata=_marked(path))
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot write {shown_path(path)}: {e}") from None
    finally:
        plt.close(fig)
    return path
