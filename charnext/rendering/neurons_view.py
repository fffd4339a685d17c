"""`charnext neurons`: the most telling units, and one unit over the text."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from charnext.rendering.console import colour_on
from charnext.rendering.palette import DIVERGING, SPARK
from charnext.rendering.widgets import wrapped_cells


def _spark(value: float, magnitude: float) -> str:
    """The bar under a character: ▁ at -magnitude, █ at +magnitude (0 falls on ▄/▅)."""
    v = max(-1.0, min(1.0, value / magnitude)) if magnitude > 0 else 0.0
    return SPARK[min(len(SPARK) - 1, int((v + 1) / 2 * len(SPARK)))]


def unit_heat_map(text: str, values: Sequence[float], magnitude: float, width: int, colour: bool) -> Text:
    """`text` wrapped at `width` cells, each character's background coloured by a unit's
    activation (blue negative, red positive); without `colour`, a line of bars under each line
    of text (▁ most negative ... █ most positive)."""
    from charnext.inside.neurons import diverging_level

    cells = (
        (ch, DIVERGING[diverging_level(v, magnitude)], _spark(v, magnitude)) for ch, v in zip(text, values)
    )
    return wrapped_cells(cells, width, colour)


def unit_legend(colour: bool, magnitude: float) -> Padding:
    """What the colours (or bars) of a unit's heat map mean (indented, wrapped lines too)."""
    if colour:
        out = Text("activation: ")
        for level in range(-4, 5):
            value = level / 4 * magnitude
            out.append(f" {value:+.2f} " if level in (-4, 0, 4) else "  ", style=DIVERGING[level] or "dim")
        return Padding(out, (0, 0, 0, 2))
    return Padding(
        Text(f"activation, as a bar under each character: ▁ {-magnitude:+.2f} … ▄▅ 0 … █ {magnitude:+.2f}"),
        (0, 0, 0, 2),
    )


def _r(r: float) -> Text:
    return Text(f"{r:+.2f}", style="red" if r > 0 else "blue")


def neuron_tables(scan, n: int = 10, width: int | None = None) -> tuple[Table, Table]:
    """The `n` most telling units of a NeuronScan, and the best unit for each feature.

    Feature names are never cut. Where the console is too narrow, the top table gives up its
    least useful columns first: `state` (the unit's name says the same, `1:c62` = layer 1 cell
    62), then `next best`."""
    units = scan.top_units(n)
    rows = []
    for s in units:
        second = f"{s.second} {s.second_r:+.2f}" if s.second else ""
        rows.append((s.unit.name, s.unit.description, s.feature, _r(s.r), second))
    columns = ["unit", "state", "follows", "r", "next best"]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    keep = list(range(len(columns)))
    for drop in (1, 4):  # state, then next best
        if width is None or sum(widths[i] for i in keep) + 3 * (len(keep) + 1) - 2 <= width:
            break
        keep.remove(drop)
    title = f"most telling units (of {len(scan.units):,}, over {scan.characters:,} characters)"
    top = Table(
        title=title, box=box.SIMPLE_HEAD, title_justify="left", min_width=min(len(title) + 2, width or 200)
    )
    styles = {"unit": "cyan", "follows": "bold", "next best": "dim"}
    for i in keep:
        name = columns[i]
        top.add_column(
            name, style=styles.get(name, ""), no_wrap=True, justify="right" if name == "r" else "left"
        )
    for r in rows:
        top.add_row(*(r[i] for i in keep))
    # min_width: a narrow table would otherwise wrap its title
    best = Table(title="best unit for each feature", box=box.SIMPLE_HEAD, title_justify="left", min_width=30)
    best.add_column("feature", style="bold", no_wrap=True)
    best.add_column("unit", style="cyan", no_wrap=True)
    best.add_column("r", justify="right")
    best.add_column("the feature at each character", style="dim", overflow="fold")
    from charnext.inside.neurons import FEATURES

    for s in scan.best_per_feature():
        best.add_row(s.feature, s.unit.name, _r(s.r), FEATURES[s.feature])
    return top, best


def show_neurons(out: Console, scan, n: int = 10) -> None:
    """`charnext neurons`: the most telling units and the best unit per feature."""
    top, best = neuron_tables(scan, n, out.width)
    out.print(top)
    out.print(best)
    if scan.top_units(1):
        out.print(Text(f"  see one over the text: --unit {scan.top_units(1)[0].unit.name}", style="dim"))


def show_unit(out: Console, scan, unit) -> None:
    """`charnext neurons --unit`: one unit's activation over the stretch, as a heat map."""
    from charnext.inside.neurons import scale

    colour = colour_on(out)
    s = scan.score(unit)
    values = scan.activation(unit)
    magnitude = scale(values)
    end = scan.stretch_offset + len(scan.stretch)
    head = Text(f"{unit.name} ({unit.description}) follows ", style="italic")
    head.append(s.feature, style="bold")
    head.append(f", r = {s.r:+.2f}; characters {scan.stretch_offset:,} to {end:,}")
    out.print(head)
    out.print(unit_legend(colour, magnitude))
    out.print()
    out.print(unit_heat_map(scan.stretch, values, magnitude, max(20, out.width - 4), colour), end="",
              soft_wrap=True)  # fmt: skip


def show_report(out: Console, report) -> None:
    """`charnext neurons`: the unit asked for over the text, else the units that follow features."""
    if report.unit is not None:
        show_unit(out, report.scan, report.unit)
    else:
        show_neurons(out, report.scan, report.top)
