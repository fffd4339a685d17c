"""`charnext neurons`: text features, recording every unit, correlations, and the command."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from charnext.cli.app import app
from charnext.inside import neurons, recording
from charnext.modeling.model import CharModel, ModelConfig
from charnext.modeling.numpy_model import NumpyModel
from charnext.text.vocab import Vocab


def test_features_at_each_character():
    text = "A \"b(c)\" d\n  if (x[1]:\nSPEAKER:\nIt's 'q' ok\n"
    f = neurons.text_features(text)
    assert set(f) == set(neurons.FEATURES)
    at = {name: dict(zip(range(len(text)), values.tolist())) for name, values in f.items()}
    assert [at["line_position"][i] for i in range(4)] == [0, 1, 2, 3]
    assert at["line_position"][10] == 10  # the newline: the line's length
    assert at["line_position"][11] == 0
    assert [at["in_double_quotes"][i] for i in (1, 2, 3, 7, 8)] == [0, 1, 1, 0, 0]  # "b(c)" inside
    depth = [at["bracket_depth"][i] for i in range(len(text))]
    assert depth[4:8] == [1, 1, 0, 0] and max(depth) == 2  # ( and then ( [ on the next line
    assert depth[text.index("]")] == 1 and depth[text.index("S")] == 1  # "(" left open
    assert [at["indent"][i] for i in range(11, 15)] == [1, 2, 2, 2]  # two spaces, then stays
    assert at["indent"][text.index("S")] == 0
    assert at["word_start"][text.index("if")] == 1 and at["word_start"][text.index("if") + 1] == 0
    assert at["word_position"][text.index("if") + 1] == 1
    assert at["upper_case"][0] == 1 and at["upper_case"][2] == 0
    assert at["digit"][text.index("1")] == 1 and at["white_space"][1] == 1
    caps = text.index("SPEAKER")
    assert at["caps_line"][caps] == 0 and at["caps_line"][caps + 1] == 1 and at["caps_line"][caps + 7] == 1
    assert at["caps_line"][text.index("It")] == 0
    apostrophe, q = text.index("'"), text.index("'q'")
    assert at["in_single_quotes"][apostrophe] == 0  # It's: an apostrophe, not a quote
    assert [at["in_single_quotes"][i] for i in (q, q + 1, q + 2, q + 3)] == [1, 1, 0, 0]
    assert at["punctuation"][text.index(":")] == 1 and at["punctuation"][0] == 0


def _model(cell: str, vocab_size: int = 6, embedding_size: int = 3, engine: str = "torch"):
    """A small 2-layer model with seeded weights: the torch CharModel, or the same weights on numpy."""
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=vocab_size, cell=cell, hidden_size=5, num_layers=2,
                         embedding_size=embedding_size)  # fmt: skip
    model = CharModel(config).eval()
    if engine == "numpy":
        return model, NumpyModel(config, {k: v.numpy() for k, v in model.state_dict().items()})
    return model, model


def _recorded(model, idx, newline=None) -> np.ndarray:
    """Every unit at every character, (T, units), put together in text order."""
    out = np.full((len(idx), len(neurons.all_units(model.config))), np.nan, dtype=np.float32)

    def put(start, states):
        assert all(isinstance(s, np.ndarray) and s.dtype == np.float32 for s in states)
        out[start : start + len(states[0])] = np.concatenate(states, axis=1)

    recording.record(model, np.asarray(idx), put, newline)
    assert not np.isnan(out).any()  # every character recorded
    return out


def _step_by_step(model, idx) -> np.ndarray:
    """The torch model itself, one character at a time: its state after each, in all_units order."""
    state, rows = None, []
    with torch.no_grad():
        for t in range(len(idx)):
            _, state = model(torch.as_tensor(idx[t : t + 1])[None], state)
            if model.config.cell.value == "lstm":  # the state holds (h, c) side by side; units: c, h
                h, c = state[:, 0].chunk(2, dim=-1)
                rows.append(torch.cat([x for layer in range(len(h)) for x in (c[layer], h[layer])]))
            else:
                rows.append(state[:, 0].reshape(-1))
    return torch.stack(rows).numpy()


def _close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("engine", ["torch", "numpy"])
@pytest.mark.parametrize("embedding_size", [3, 0])  # an embedding, or one-hot input
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_record_gives_every_layer_state_step_by_step(cell, embedding_size, engine, monkeypatch):
    monkeypatch.setattr(recording, "CHUNK", 7)  # state carried across many chunk boundaries
    monkeypatch.setattr(recording, "PIECES", 1)  # one sequence: exact
    model, recorder = _model(cell, embedding_size=embedding_size, engine=engine)
    idx = np.random.default_rng(0).integers(0, 6, 30)
    _close(_recorded(recorder, idx), _step_by_step(model, idx))


@pytest.mark.parametrize("engine", ["torch", "numpy"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_pieces_side_by_side_match_one_pass(cell, engine, monkeypatch):
    monkeypatch.setattr(recording, "CHUNK", 100)  # pieces of 76 characters, in chunks of up to 100
    monkeypatch.setattr(recording, "WARMUP", 60)
    assert recording.pieces(200) == [(0, 200)]
    assert recording.pieces(301) == [(0, 76), (76, 152), (152, 228), (228, 301)]
    model, recorder = _model(cell, engine=engine)
    idx = np.random.default_rng(0).integers(0, 6, 301)
    # each piece warmed up on the 60 characters before it: the state a reader of the whole has
    _close(_recorded(recorder, idx), _step_by_step(model, idx))


@pytest.mark.parametrize("engine", ["torch", "numpy"])
@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_line_mode_reads_every_line_from_the_zero_state(cell, engine, monkeypatch):
    monkeypatch.setattr(recording, "CHUNK", 4)  # and PIECES 16: lines batched 64 padded characters at a time
    text = "ab\nabcab\n\nba" + "\nabc" * 12 + "\n"
    vocab = Vocab.from_text(text)  # a, b, newline, c
    model, recorder = _model(cell, vocab_size=len(vocab), engine=engine)
    out = _recorded(recorder, vocab.encode_array(text), vocab.chars.index("\n"))
    expected, start = [], 0
    for line in text.split("\n"):  # as training reads a line: a line break, then the line
        states = _step_by_step(model, vocab.encode_array("\n" + line))
        expected.append(states[1:] if start == 0 else states)  # the first line has no break in the text
        start += len(line) + 1
    _close(out, np.concatenate(expected)[: len(text)])


@pytest.mark.parametrize("lines", [False, True])
@pytest.mark.parametrize("embedding_size", [3, 0])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_numpy_records_what_torch_records(cell, embedding_size, lines, monkeypatch):
    """The two engines give every unit the same activation within 1e-5, over a text read in
    pieces side by side (or line by line), and the same correlations."""
    monkeypatch.setattr(recording, "CHUNK", 64)
    monkeypatch.setattr(recording, "WARMUP", 40)
    text = "The cat (sat) on 'the' mat.\n  Said \"HI\" 42 times.\nOK\n" * 12
    vocab = Vocab.from_text(text)
    model, numpy_model = _model(cell, vocab_size=len(vocab), embedding_size=embedding_size, engine="numpy")
    newline = vocab.chars.index("\n") if lines else None
    idx = vocab.encode_array(text)
    _close(_recorded(numpy_model, idx, newline), _recorded(model, idx, newline))
    on_torch = neurons.scan(model, vocab, text, stretch_offset=5, line_mode=lines)
    on_numpy = neurons.scan(numpy_model, vocab, text, stretch_offset=5, line_mode=lines)
    _close(on_numpy.activations, on_torch.activations)
    np.testing.assert_allclose(on_numpy.r, on_torch.r, atol=1e-4)


def test_scan_correlations_are_pearson(monkeypatch):
    torch.manual_seed(1)
    text = "The cat (sat) on 'the' mat.\n  Said \"HI\" 42 times.\nOK\n" * 20
    vocab = Vocab.from_text(text)
    model = CharModel(ModelConfig(vocab_size=len(vocab), hidden_size=8, num_layers=2, embedding_size=4))
    result = neurons.scan(model, vocab, text, stretch_offset=10, stretch_length=30)
    acts = _recorded(model, vocab.encode_array(text)).astype(np.float64)
    feats = neurons.text_features(text)
    for j, name in enumerate(result.features):
        for i in (0, 9, 17, 31):
            expected = np.corrcoef(acts[:, i], feats[name])[0, 1]
            assert result.r[i, j] == pytest.approx(expected, abs=1e-4)
    np.testing.assert_allclose(result.activations, acts[10:40], atol=1e-6)
    assert result.stretch == text[10:40] and result.characters == len(text)
    top = result.top_units(5)
    assert [abs(s.r) for s in top] == sorted((abs(s.r) for s in top), reverse=True)
    assert abs(top[0].r) == pytest.approx(np.abs(result.r).max())
    best = result.best_per_feature()
    assert sorted(s.feature for s in best) == sorted(result.features)


def test_constant_features_are_left_out():
    text = "abcabc abc\n" * 5  # no quotes, brackets, digits, capitals or indentation
    vocab = Vocab.from_text(text)
    model = CharModel(ModelConfig(vocab_size=len(vocab), hidden_size=4, num_layers=1))
    result = neurons.scan(model, vocab, text)
    assert "line_position" in result.features and "white_space" in result.features
    for constant in ("digit", "bracket_depth", "in_double_quotes", "upper_case", "indent"):
        assert constant not in result.features
    assert np.isfinite(result.r).all()


def test_parse_unit():
    lstm = CharModel(ModelConfig(vocab_size=3, hidden_size=8, num_layers=2))
    gru = CharModel(ModelConfig(vocab_size=3, cell="gru", hidden_size=8, num_layers=1))
    assert neurons.parse_unit("1:7", lstm.config) == neurons.Unit(1, "c", 7)  # the LSTM's cell by default
    assert neurons.parse_unit("0:h3", lstm.config).name == "0:h3"
    assert neurons.parse_unit("0:3", gru.config) == neurons.Unit(0, "h", 3)
    for bad, message in (("2:0", "does not exist"), ("0:8", "does not exist"), ("x", "LAYER:INDEX"),
                         ("0:c1", None)):  # fmt: skip
        model = gru if bad == "0:c1" else lstm
        with pytest.raises(Exception, match=message or "only an LSTM has a cell state"):
            neurons.parse_unit(bad, model.config)


# ---------------------------------------------------------------------------------------------
# the command


@pytest.fixture
def hitext(tmp_path):
    path = tmp_path / "hi.txt"
    path.write_text("hihello" * 40, encoding="utf-8")
    return path


def test_neurons_lists_units(hihello, hitext):
    r = CliRunner().invoke(app, ["neurons", "-c", str(hihello), "--file", str(hitext), "--top", "4"])
    assert r.exit_code == 0, r.output
    assert "most telling units (of 64, over 280 characters)" in r.output
    rows = re.findall(r"^\s+(0:[ch]\d+)\s+layer 0 (cell|hidden) \d+\s+(\w+)\s+([+-]\d\.\d\d)", r.output, re.M)
    assert len(rows) == 4 and all(feature in neurons.FEATURES for _, _, feature, _ in rows)
    assert "best unit for each feature" in r.output and "line_position" in r.output
    # word_start is true at one character of 280: too rare to score (MIN_VARYING_SHARE)
    assert "word_start" not in r.output
    assert "--unit 0:" in r.output


def test_neurons_unit_heat_map_in_a_pipe(hihello, hitext):
    r = CliRunner().invoke(app, ["neurons", "-c", str(hihello), "--file", str(hitext), "--unit", "0:h3",
                                 "--show-chars", "21"])  # fmt: skip
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("0:h3 (layer 0 hidden 3) follows ") and "characters 0 to 21" in lines[0]
    assert "▁" in lines[1] and "█" in lines[1]  # the legend of the bars
    text_line = lines.index("  hihellohihellohihello")
    bars = lines[text_line + 1].strip()
    assert len(bars) == 21 and set(bars) <= set("▁▂▃▄▅▆▇█")
    assert bars[:7] * 3 != bars or len(set(bars)) > 1  # the unit varies along the text


def test_unit_heat_map_in_colour():
    from charnext.rendering.neurons_view import unit_heat_map

    con = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=40, no_color=False)
    con.print(unit_heat_map("ab\ncd", [-1.0, 0.0, 0.5, 1.0, 0.2], 1.0, 30, colour=True))
    out = con.file.getvalue()
    assert "48;2;33;102;172" in out  # -1: the darkest blue background
    assert "48;2;178;24;43" in out  # +1: the darkest red
    assert "▁" not in out  # colour replaces the bars


def test_neurons_json(hihello, hitext):
    r = CliRunner().invoke(app, ["neurons", "-c", str(hihello), "-f", str(hitext), "--json", "--unit", "0:5",
                                 "--show-chars", "10", "--top", "3"])  # fmt: skip
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["characters"] == 280 and d["units"] == 64
    assert len(d["top_units"]) == 3 and {"unit", "feature", "r", "layer", "state", "index"} <= set(
        d["top_units"][0]
    )
    assert d["features"]["line_position"].startswith("characters since")
    assert (
        d["unit"]["unit"] == "0:c5"
        and d["unit"]["text"] == "hihellohih"
        and len(d["unit"]["activations"]) == 10
    )


def test_neurons_errors(hihello, hitext, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["neurons", "-c", str(hihello), "-f", str(hitext), "--unit", "3:1"])
    assert r.exit_code == 1 and "unit 3:1 does not exist" in r.output
    other = tmp_path / "x.txt"
    other.write_text("hi there", encoding="utf-8")
    r = runner.invoke(app, ["neurons", "-c", str(hihello), "-f", str(other)])
    assert r.exit_code == 1 and "not in the vocabulary" in r.output
    r = runner.invoke(app, ["neurons", "-c", str(hihello), "-f", str(other), "--skip-unknown"])
    assert r.exit_code == 0 and "skipped characters not in the vocabulary" in r.output
    r = runner.invoke(app, ["neurons", "-c", str(hihello), "-f", str(hitext), "--offset", "999"])
    assert r.exit_code == 1 and "past the end" in r.output


def test_neurons_reads_text_as_evaluate_does(hihello, hitext):
    """TEXT is positional, like `evaluate TEXT`; the same text given as --file scores the same."""
    as_file = CliRunner().invoke(app, ["neurons", "-c", str(hihello), "--file", str(hitext), "--json"])
    as_text = CliRunner().invoke(app, ["neurons", "hihello" * 40, "-c", str(hihello), "--json"])
    assert as_file.exit_code == 0 and as_text.exit_code == 0, as_text.output
    assert json.loads(as_text.stdout)["units"] == json.loads(as_file.stdout)["units"]
    both = CliRunner().invoke(app, ["neurons", "hi", "-c", str(hihello), "--file", str(hitext)])
    neither = CliRunner().invoke(app, ["neurons", "-c", str(hihello)])
    assert both.exit_code == 2 and neither.exit_code == 2


def test_a_unit_appears_once_among_the_best_per_feature():
    """caps_line and upper_case often move together; one unit cannot stand for both."""
    units = [neurons.Unit(0, "c", i) for i in range(3)]
    r = np.array([[0.9, 0.8, 0.1], [0.5, 0.7, 0.2], [0.1, 0.1, 0.3]])  # (units, features)
    result = neurons.NeuronScan(units, ["caps_line", "upper_case", "indent"], r, 100, 0, "", np.zeros((0, 3)))
    best = {s.feature: (s.unit, round(s.r, 2)) for s in result.best_per_feature()}
    assert best == {"caps_line": (units[0], 0.9), "upper_case": (units[1], 0.7), "indent": (units[2], 0.3)}


def test_a_feature_that_hardly_varies_is_not_scored():
    assert not neurons._varies(np.zeros(500))
    assert not neurons._varies(np.r_[np.ones(3), np.zeros(497)])  # a stray indented line
    assert neurons._varies(np.r_[np.ones(10), np.zeros(490)])  # 2% of the characters
