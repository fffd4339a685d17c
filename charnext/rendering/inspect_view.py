"""`charnext inspect`: model, parameters, vocabulary, training, provenance, loss chart."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from charnext.config import format_duration
from charnext.events import plus_minus, scored_words
from charnext.inside.curves import smooth
from charnext.rendering.widgets import LN2, average_note, files_line, key_value_table, line_chart
from charnext.text.paths import shown_path
from charnext.text.vocab import visible, visible_text


def parameter_table(params: Sequence[tuple[str, tuple[int, ...], int]]) -> Table:
    """Per-tensor parameter counts."""
    t = Table(title="parameters", box=box.SIMPLE_HEAD, title_justify="left")
    t.add_column("tensor", style="cyan")
    t.add_column("shape", justify="right")
    t.add_column("count", justify="right")
    for name, shape, n in params:
        t.add_row(name, " x ".join(map(str, shape)), f"{n:,}")
    t.add_row("[bold]total[/]", "", f"[bold]{sum(p[2] for p in params):,}[/]")
    return t


def _inference_only_rows(info: dict) -> list[tuple[str, str]]:
    """What an exported file holds, and only that."""
    start = info.get("start") or ""
    rows = [
        ("kind", "inference-only (charnext export): the weights, the vocabulary and the model's "
                 "configuration; no training record, so it cannot be resumed"),
        ("trained for", f"{info['training']['steps']:,} steps"),
        ("mode", "lines (each line read after a newline, from zero)" if info.get("line_mode") else "stream"),
    ]  # fmt: skip
    if not info.get("line_mode"):
        rows.append(("reads first", visible_text(start) if start else "nothing (the zero state)"))
    rows.append(("written by", f"charnext {info['charnext_version']}, {info['created']}"))
    return rows


def vocab_table(
    chars: Sequence[str], counts: Sequence[int] | None, one_hot_max: int = 12, most: int = 16
) -> Group:
    """Index and character; one-hot rows for a small vocabulary, the most frequent otherwise.

    The heading and the note on what is left out are lines of their own, not the table's title
    and caption, which Rich would wrap to the narrow table's width."""
    small = len(chars) <= one_hot_max
    total = sum(counts) if counts else 0
    t = Table(box=box.SIMPLE_HEAD)
    t.add_column("index", justify="right", style="cyan")
    t.add_column("char", justify="center", style="bold")
    if small:
        t.add_column("one-hot")
    if counts:
        t.add_column("count", justify="right")
        t.add_column("share", justify="right")
    order = list(range(len(chars)))
    if not small and counts:
        order = sorted(order, key=lambda i: -counts[i])[:most]
    elif not small:
        order = order[:most]
    for i in order:
        row = [str(i), visible(chars[i])]
        if small:
            row.append(" ".join("1" if j == i else "0" for j in range(len(chars))))
        if counts:
            row += [f"{counts[i]:,}", f"{counts[i] / total:.1%}" if total else ""]
        t.add_row(*row)
    heading = f"vocabulary: {len(chars)} characters" + (f", {total:,} in the training text" if counts else "")
    parts: list = [Text(heading, style="italic"), t]
    left = len(chars) - len(order)
    if left:
        parts.append(Text(f"  and {left} more (--json lists all)", style="dim"))
    return Group(*parts)


def _figure(x) -> str:
    """A rate as a person reads it: three significant digits (0.00653, not 0.0065319726474218085)."""
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def provenance_rows(p: dict, log: dict | None) -> list[tuple[str, str | list[str]]]:
    """Where a run came from, for `inspect`: command, source, versions, batch and schedule."""
    source = p.get("source") or {}
    if not isinstance(source, dict):
        source = {}
    path = source.get("path")
    where = [shown_path(path)] if isinstance(path, str) and path else []  # one word, spaces and all
    files = [f.get("path") for f in source.get("files") or [] if isinstance(f, dict)]
    shown: str | list[str] = [str(source.get("kind", "-")), *where]
    if source.get("kind") == "files" and files and all(isinstance(f, str) for f in files):
        skipped = source.get("skipped") if isinstance(source.get("skipped"), int) else 0
        shown = files_line(tuple(files), skipped)  # several files: how many, and which
    command = p.get("command")
    schedule = p.get("schedule") if isinstance(p.get("schedule"), dict) else {}
    total, budget = schedule.get("total_steps"), schedule.get("max_time")
    plan = (
        f"{total:,} steps" if _positive(total) else
        f"{format_duration(budget)} budget" if _positive(budget) else "-"
    )  # fmt: skip
    rows = [
        ("command", [str(a) for a in command] if isinstance(command, list) and command else "- (Python API)"),
        ("source", shown),
        ("versions", f"charnext {p.get('charnext')}, torch {p.get('torch')}, Python {p.get('python')}"),
        ("platform", str(p.get("platform"))),
        ("batch", f"{p.get('batch_size')} x {p.get('seq_len')} characters per step, "
                  f"{p.get('processes', 1)} process(es), {p.get('threads') or '-'} thread(s) each"),
        ("schedule", f"{plan}, peak lr {_figure(schedule.get('lr'))}, warm-up {schedule.get('warmup_steps')} "
                     f"steps, cosine to {schedule.get('min_lr_ratio')} of the peak"),
    ]  # fmt: skip
    chosen = p.get("plan")
    if isinstance(chosen, dict) and chosen.get("why"):
        names = chosen.get("planned") if isinstance(chosen.get("planned"), list) else []
        planned = ", ".join(str(n).replace("_", "-") for n in names) or "nothing"
        rows.append(("plan", f"{chosen['why']} (planned: {planned})"))
    averaging = p.get("averaging")
    if isinstance(averaging, dict):
        held = "their average" if averaging.get("weights") == "average" else "the live weights"
        rows.append(("weights", f"{held} (EMA {averaging.get('decay')} every {averaging.get('every')} "
                                f"steps from {averaging.get('start', 0):.0%} of the run)"
                                + average_note(averaging)))  # fmt: skip
    outlook = p.get("outlook")
    if isinstance(outlook, dict) and outlook.get("line"):
        rows.append(("outlook", str(outlook["line"])))
    if log:
        counts = f"{log['steps']:,} steps, {len(log['validations'])} validations"
        rows.append(("metrics log", [shown_path(log["path"]), *f"({counts})".split(" ")]))
    return rows


def show_checkpoint(out: Console, info: dict, model_rows: Sequence[tuple[str, str]]) -> None:
    """`charnext inspect`: model (`model_rows`, as the core words them), parameters, vocabulary,
    training and loss curves (an exported file: what it holds instead of the training)."""
    m, t = info["model"], info["training"]
    out.print(key_value_table("model", model_rows))
    out.print(parameter_table([(p["name"], tuple(p["shape"]), p["parameters"]) for p in m["layers"]]))
    out.print(vocab_table(info["vocabulary"], info.get("vocabulary_counts")))

    if info.get("inference_only"):  # `charnext export`: no training record to show
        out.print(key_value_table("file", _inference_only_rows(info)))
        return

    def num(v, fmt="{:.4f}"):
        return fmt.format(v) if isinstance(v, (int, float)) else "-"

    text = t.get("text") or {}
    raw = [(x, y) for x, y in zip(info["history_steps"], info["history"]) if y is not None]
    smoothed = smooth([y for _, y in raw])
    rows = [("steps", f"{t['steps']:,}")]
    if t["val_loss"] is not None:  # the figure that says how good the model is: first
        rows += validation_rows(t)
    rows += [
        ("training loss", (f"{smoothed[-1]:.4f} nats/char smoothed (last step "
                           f"{num(t['final_loss'])})") if smoothed else "-"),
        ("accuracy", num(t["accuracy"], "{:.1%}") + " (last step)"),
    ]  # fmt: skip
    rows += [
        ("time", format_duration(t["elapsed"]) if t.get("elapsed") is not None else "-"),
        ("text", f"{text.get('length', 0):,} characters, sha256 {str(text.get('sha256', '-'))[:16]}…"),
        ("device", f"{t.get('device') or '-'}, {t.get('precision') or '-'}"),
        ("resumable", "yes" if t["resumable"] else "no"),
        ("written by", f"charnext {info['charnext_version']}, {info['created']}"),
    ]
    out.print(key_value_table("training", rows))
    if info.get("provenance"):
        out.print(key_value_table("provenance", provenance_rows(info["provenance"], info.get("metrics_log"))))
    series = {"train loss, smoothed": ([x for x, _ in raw], smoothed)}
    val = [(x, y) for x, y in zip(info["validation"]["steps"], info["validation"]["loss"]) if y is not None]
    if val:
        series["validation loss"] = ([x for x, _ in val], [y for _, y in val])
    width = max(20, min(60, out.width - 12))
    out.print(Text("loss history", style="italic"))
    faint = ("per step", [x for x, _ in raw], [y for _, y in raw])
    out.print(line_chart(series, width=width, faint=faint))


def validation_rows(t: dict) -> list[tuple[str, str]]:
    """The best check (on the checks' fixed sample) and the last figure, with their standard
    errors and what they scored, from describe()'s "training"."""
    best = t["best_val_loss"]
    best_se = plus_minus(t.get("best_val_se")) if t.get("best_val_se") is not None else ""
    sample = t.get("sample_chars")
    where = f", the checks' {sample:,}-character sample" if isinstance(sample, int) and sample else ""
    scored = scored_words(t.get("val_scored"), t.get("val_all"))
    return [
        ("best validation", f"{best:.4f}{best_se} nats/char ({best / LN2:.3f} bits/char){where}"),
        ("last validation", f"{t['val_loss']:.4f}{plus_minus(t.get('val_se'))} nats/char"
                            + (f", {scored}" if scored else "")),
    ]  # fmt: skip


def _positive(v) -> bool:
    """A number above zero (a recorded field, which a damaged file may hold as anything)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
