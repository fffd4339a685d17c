"""Layout at 60, 80 and 120 columns, each on a Rich Console of that width (never the real
terminal's): pairs and names stay whole, a table gives up its least useful column first."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from charnext import api
from charnext.inside.neurons import scan
from charnext.rendering import evaluate_view, neurons_view, predict_view
from charnext.rendering.play_ui import frame
from charnext.text.vocab import visible

WIDTHS = [60, 80, 120]


def rendered(width: int, *things) -> list[str]:
    con = Console(file=io.StringIO(), width=width, no_color=True, color_system=None)
    for thing in things:
        con.print(thing)
    return con.file.getvalue().splitlines()


@pytest.fixture(scope="module")
def poem_ckpt(tmp_path_factory):
    text = (
        "Tyger Tyger, burning bright,\nIn the forests of the night;\n" * 40
    ) + "    WHAT IMMORTAL HAND\n" * 5
    path = tmp_path_factory.mktemp("w") / "poem.pt"
    api.train(text, out=path, steps=20, hidden_size=16, num_layers=1, precision="fp32", device="cpu")
    return api.load(path, engine="torch"), text


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("k", [3, 5])
def test_predict_never_breaks_a_pair(poem_ckpt, width, k):
    ckpt, _ = poem_ckpt
    steps = api.predict(ckpt, "Tyger, burning", alternatives=k).steps
    lines = rendered(width, predict_view.prediction_table(steps, k, width=width))
    assert max(len(line) for line in lines) <= width
    for s in steps:
        for c, p in s.top:
            pair = f"{visible(c)} {p:.2f}"
            assert any(pair in line for line in lines), (width, pair)
    if width >= 80 and k == 3:  # room for the three pairs on the step's own line
        assert sum(1 for line in lines if re.match(r"\s+\d+\s", line)) == len(steps)
        assert len([line for line in lines if line.strip()]) == len(steps) + 3


@pytest.mark.parametrize("width", WIDTHS)
def test_neurons_keep_feature_names_whole_and_drop_the_unit_state_first(poem_ckpt, width):
    ckpt, text = poem_ckpt
    result = scan(ckpt.model, ckpt.vocab, text, 5000)
    top, best = neurons_view.neuron_tables(result, 10, width)
    lines = rendered(width, top, best)
    assert max(len(line) for line in lines) <= width
    out = "\n".join(lines)
    assert "…" not in out
    for s in result.top_units(10):
        assert re.search(rf"\b{s.feature}\b", out), s.feature  # whole, on one line
    heads = next(line for line in lines if "follows" in line).split()
    if width == 60:
        assert "state" not in heads  # the unit's name (1:c8) says the same
    if width == 120:
        assert heads == ["unit", "state", "follows", "r", "next", "best"]


def test_the_heat_map_legend_wraps_with_its_indent():
    for colour in (False, True):
        lines = rendered(36, evaluate_view.heat_legend(colour))
        assert len(lines) > 2  # it did wrap
        assert all(line.startswith("  ") for line in lines if line.strip())


@pytest.mark.parametrize("width", WIDTHS)
def test_play_keys_break_between_phrases(hihello, width):
    session = api.play_session(api.load(hihello, engine="torch"))
    lines = rendered(width, frame(session, "charnext play", 5, 200, "", width))
    keys = [line for line in lines[1:4] if "·" in line or "quit" in line]
    assert "".join(keys).count("Ctrl-C or Ctrl-D quit") == 1  # the phrase whole, on one line
    assert all(line.strip() != "quit" for line in lines)
    if width >= 80:
        assert len(keys) == 1  # the whole line fits
