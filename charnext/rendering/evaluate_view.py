"""`charnext evaluate`: the scores, and with --show the heat map of surprise."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from charnext.rendering.console import colour_on
from charnext.rendering.palette import HEAT
from charnext.rendering.widgets import alternatives_text, key_value_table, room_for, wrapped_cells
from charnext.text.paths import shown_path
from charnext.text.vocab import visible, visible_text


def evaluation_table(r, checkpoint: str, source: str | Sequence[str]) -> Table:
    """Loss, bits/char, perplexity and accuracy of a checkpoint on a text (an Evaluation);
    `source` as words (a path one word)."""
    rows = [
        ("checkpoint", [shown_path(checkpoint)]),
        ("text", source),
        ("scored", f"{r.characters:,} characters"),
        ("loss", f"{r.loss:.4f} nats/char"),
        ("bits/char", f"{r.bits_per_char:.4f}"),
        ("perplexity", f"{r.perplexity:.3f}"),
        ("accuracy", f"{r.accuracy:.1%} of next characters predicted exactly"),
    ]
    # what the loss compares with: the model on its own held-out text, and a model that knows
    # nothing but how often each character occurs
    if getattr(r, "training_val_loss", None) is not None:
        rows.append(("in training", f"{r.training_val_loss:.4f} nats/char on its own held-out text"))
    if getattr(r, "unigram_loss", None) is not None:
        rows.append(
            ("frequencies", f"{r.unigram_loss:.4f} nats/char knowing only how often each character occurs")
        )
    if r.skipped:
        shown = " ".join(f"'{visible(c)}'" for c in r.skipped_chars[:12])
        more = " ..." if len(r.skipped_chars) > 12 else ""
        rows.append(("skipped", f"{r.skipped:,} characters not in the vocabulary: {shown}{more}"))
    return key_value_table("evaluation", rows)


def _bucket(prob: float | None) -> tuple[str, str]:
    """(style, mark) of a probability; unscored characters are dim and unmarked."""
    if prob is None:
        return "dim", " "
    from charnext.inference.surprise import surprise_level

    return HEAT[surprise_level(prob)]


def heat_map(chars, width: int, colour: bool) -> Text:
    """The stretch, wrapped at `width` cells, each character styled by its probability; without
    `colour`, a line of marks under each line of text instead."""
    return wrapped_cells(((c.char, *_bucket(c.prob)) for c in chars), width, colour, "bold")


def heat_legend(colour: bool) -> Padding:
    """What the colours (or marks) of the heat map mean: two short lines, indented, and so is
    every line they wrap onto in a narrow terminal."""
    from charnext.inference.surprise import SURPRISE_LEVELS

    out = Text("probability the model gave each character")
    if colour:
        out.append(":\n")
        for (style, _), (_, label) in zip(HEAT, SURPRISE_LEVELS):
            out.append(f" {label} ", style=style)
            out.append(" ")
        out.append(" unscored", style="dim")
    else:
        out.append(", marked under it:\n")
        out.append(
            "   ".join(f"{mark} {label}" for (_, mark), (_, label) in list(zip(HEAT, SURPRISE_LEVELS))[1:])
        )
        out.append("   (no mark: ≥ 50%)")
    return Padding(out, (0, 0, 0, 2))


def _context(chars, i: int, before: int = 12) -> Text:
    """The characters before position i of the stretch, then the character itself in brackets."""
    head = visible_text("".join(c.char for c in chars[max(0, i - before) : i]))
    return Text(head[-before:], style="dim") + Text(f"[{visible(chars[i].char)}]", style="bold red")


def surprise_table(view, n: int = 10, width: int | None = None) -> Table:
    """The `n` most surprising characters of a Surprise, with what the model expected instead."""
    t = Table(title=f"most surprising characters (of {len(view.chars):,} shown)", box=box.SIMPLE_HEAD,
              title_justify="left")  # fmt: skip
    t.add_column("pos", justify="right", style="cyan")
    t.add_column("context", no_wrap=True)
    t.add_column("prob", justify="right")
    t.add_column("bits", justify="right")
    t.add_column("expected instead", no_wrap=True)
    room = room_for(width, [max(3, len(f"{view.offset + len(view.chars)}")), 12 + 3, 6, 4])
    for c in view.most_surprising(n):
        i = c.position - view.offset
        t.add_row(str(c.position), _context(view.chars, i), f"{c.prob:.4f}", f"{c.surprisal:.1f}",
                  alternatives_text(c.top, room))  # fmt: skip
    return t


def show_surprise(out: Console, view, n: int = 10) -> None:
    """`charnext evaluate --show`: the heat map of a stretch, its legend, the most surprising."""
    colour = colour_on(out)
    end = view.offset + len(view.chars)
    out.print(Text(f"characters {view.offset:,} to {end:,}", style="italic"))
    out.print(heat_legend(colour))
    out.print()
    out.print(heat_map(view.chars, max(20, out.width - 4), colour), end="", soft_wrap=True)
    out.print()
    out.print(surprise_table(view, n, out.width))


def source_name(text: str | None, file, characters: int) -> str | list[str]:
    """What the table calls the text scored: standard input, the file (a path, kept whole when
    wrapped), or TEXT with its length."""
    if file is not None:
        return "standard input" if str(file) == "-" else [shown_path(file)]
    return "standard input" if text == "-" else f"TEXT ({characters:,} characters)"


def show_report(out: Console, report, checkpoint: str, source: str | Sequence[str]) -> None:
    """`charnext evaluate`: the scores, then with --show the surprise of the stretch."""
    out.print(evaluation_table(report.evaluation, checkpoint, source))
    if report.surprise is not None:
        show_surprise(out, report.surprise, report.most)
