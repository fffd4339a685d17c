"""`charnext report`: the page's data and HTML (here), and the page in a real browser
(test_report_browser.py)."""

from __future__ import annotations

import re

import pytest
from conftest import POEM
from typer.testing import CliRunner

from charnext.cli.app import app
from charnext.text.paths import shown_path

QUOTED = 'He said "(burning) bright" twice.\n'  # quotes and brackets, for the features


@pytest.fixture(scope="session")
def poem_model(tmp_path_factory):
    """A small 2-layer LSTM trained briefly on verse, with validation: a report has curves."""
    from charnext import api

    path = tmp_path_factory.mktemp("report") / "poem.pt"
    api.train((POEM + QUOTED) * 20, out=path, steps=60, lr=0.01, hidden_size=24, num_layers=2,
              embedding_size=8, eval_every=20, val_fraction=0.1, precision="fp32", device="cpu",
              seq_len=32)  # fmt: skip
    return path


@pytest.fixture(scope="session")
def report_file(poem_model, tmp_path_factory):
    """A report of the poem model over the poem, written by the CLI."""
    folder = tmp_path_factory.mktemp("page")
    text = folder / "poem.txt"
    text.write_text((POEM + QUOTED) * 4, encoding="utf-8")
    out = folder / "report.html"
    r = CliRunner().invoke(app, ["report", "-c", str(poem_model), "--file", str(text), "-o", str(out),
                                 "--chars", "300", "--units", "4"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert f"report written to {shown_path(out)} (" in r.output.splitlines()[-1]  # one line, any width
    return out


def test_report_is_one_self_contained_file(report_file):
    page = report_file.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for section in ("summary", "curves", "predictions", "surprise", "units"):
        assert f'<section id="{section}">' in page
    # nothing to fetch: no external source, link, import or URL at all
    assert not re.search(r"\b(src|href)\s*=|url\(|@import|https?://", page)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)[1]
    assert "default-src 'none'" in csp and "unsafe" not in csp
    assert "<polyline" in page  # the loss curves are inline SVG
    assert page.count("<h3>") == 4  # four units as heat maps
    assert "lstm · 2 × 24 units" in page


def test_the_policy_allows_exactly_the_inline_style_and_script(report_file):
    """web/report.css and web/report.js are inlined as they are hashed: a browser runs them."""
    import base64
    import hashlib

    page = report_file.read_text(encoding="utf-8")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)[1]
    for directive, tag in (("style-src", "style"), ("script-src", "script")):
        (inline,) = re.findall(f"<{tag}>(.*?)</{tag}>", page, re.S)
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}';" in csp


def test_report_data(poem_model):
    from charnext.inside.report import collect
    from charnext.storage.checkpoint import load

    d = collect(
        load(poem_model), text=POEM * 2, source="poem", prefix="Tyger", chars=50, units=3, alternatives=4
    )
    assert [s["input"] for s in d.prefix_steps] == list("Tyger")
    assert [s["target"] for s in d.prefix_steps] == list("yger") + [None]
    assert all(len(s["top"]) == 4 for s in d.prefix_steps)
    assert "".join(c["char"] for c in d.surprise) == (POEM * 2)[:50]
    assert d.surprise[0]["prob"] is None and 0 < d.surprise[1]["prob"] <= 1
    assert len(d.units) == 3 and all(len(u["values"]) == 50 for u in d.units)
    assert d.neuron_chars == len(POEM * 2)
    assert len({u["feature"] for u in d.units}) == 3  # one unit per feature, the strongest first
    assert abs(d.units[0]["r"]) >= abs(d.units[-1]["r"])


def test_report_without_a_text_reads_a_sample(hihello, tmp_path):
    out = tmp_path / "r.html"
    r = CliRunner().invoke(app, ["report", "-c", str(hihello), "-o", str(out), "--chars", "40"])
    assert r.exit_code == 0, r.output
    page = out.read_text(encoding="utf-8")
    assert "a sample the model wrote" in page
    assert "hihello" in re.sub(r"<[^>]+>", "", page)  # the model writes what it learned


def test_report_escapes_the_text(hihello, tmp_path):
    from charnext.inside.report import collect
    from charnext.inside.report_html import to_html
    from charnext.storage.checkpoint import load

    d = collect(load(hihello), text="hihello" * 5, source="<script>alert(1)</script>", chars=20)
    page = to_html(d)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert page.count("<script>") == 1


def test_report_errors(hihello, tmp_path):
    r = CliRunner().invoke(app, ["report", "-c", str(hihello), "-o", str(tmp_path / "no" / "r.html")])
    assert r.exit_code == 1 and "cannot write" in r.output
    text = tmp_path / "t.txt"
    text.write_text("hihello xyz", encoding="utf-8")
    r = CliRunner().invoke(
        app, ["report", "-c", str(hihello), "-f", str(text), "-o", str(tmp_path / "r.html")]
    )
    assert r.exit_code == 1 and "not in the vocabulary" in r.output
    r = CliRunner().invoke(app, ["report", "-c", str(hihello), "-f", str(text), "--skip-unknown",
                                 "-o", str(tmp_path / "r.html")])  # fmt: skip
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    "field, value, problem",
    [
        ("offset", -1, "must be 0 or more, not -1"),
        ("chars", 0, "must be at least 1, not 0"),
        ("units", -1, "must be 0 or more, not -1"),
        ("alternatives", 0, "must be at least 1, not 0"),
        ("max_chars", 0, "must be at least 1 (None: all), not 0"),
    ],
)
def test_a_report_request_checks_each_value_by_its_name(field, value, problem):
    from charnext import api
    from charnext.errors import InvalidValue

    with pytest.raises(InvalidValue) as caught:
        api.ReportRequest(**{field: value})
    assert (caught.value.param, caught.value.problem) == (field, problem)
    assert api.ReportRequest(units=0, max_chars=None).units == 0  # no units, the whole text: fine


@pytest.mark.parametrize(
    "option, problem",
    [("--chars", "must be at least 1, not 0"), ("--alternatives", "must be at least 1, not 0")],
)
def test_report_refuses_a_value_before_loading_anything(option, problem, tmp_path):
    missing = tmp_path / "missing.pt"  # never read: the value is refused first
    r = CliRunner().invoke(app, ["report", "-c", str(missing), "-o", str(tmp_path / "r.html"), option, "0"])
    assert r.exit_code == 2 and problem in r.output and "missing.pt" not in r.output


def test_a_clipped_curve_is_cut_at_the_top_and_marked():
    from charnext.inside.report_html import _clip

    series = [(0, 4.0), (1, 3.0), (2, 1.5), (3, 1.2), (4, 2.5), (5, 1.1)]
    pieces = _clip(series, top=2.0)
    assert [p for p, _ in pieces] == [
        [(pytest.approx(2 - 0.5 / 1.5), 2.0), (2, 1.5), (3, 1.2), (pytest.approx(3 + 0.8 / 1.3), 2.0)],
        [(pytest.approx(4 + 0.5 / 1.4), 2.0), (5, 1.1)],
    ]
    crossings = [c for _, c in pieces]  # each crossing marked
    assert crossings == [
        [pytest.approx(2 - 0.5 / 1.5), pytest.approx(3 + 0.8 / 1.3)],
        [pytest.approx(4 + 0.5 / 1.4)],
    ]
    assert _clip([(0, 1.0), (1, 0.5)], top=2.0) == [([(0, 1.0), (1, 0.5)], [])]  # nothing to cut


def test_report_sample_is_drawn_with_temperature_top_k_top_p_and_seed(hihello):
    """Without a text the report reads what the model writes, drawn by the one sampler."""
    from charnext import api
    from charnext.config import SampleConfig
    from charnext.inside.report import collect

    ckpt = api.load(hihello)

    def sample(**options) -> tuple[str, str]:
        d = collect(ckpt, chars=60, units=0, sample=SampleConfig(**options))
        return "".join(c["char"] for c in d.surprise), d.source

    greedy, source = sample(temperature=0)
    assert "hihello" in greedy and "temperature 0" in source
    assert sample(temperature=3.0, seed=1) == sample(temperature=3.0, seed=1)
    assert sample(temperature=3.0, seed=1)[0] != sample(temperature=3.0, seed=2)[0]
    assert sample(temperature=3.0, top_k=1, seed=1)[0] == greedy
    assert sample(temperature=3.0, top_p=0.01, seed=2)[0] == greedy
    assert (
        sample(temperature=3.0, top_k=2, seed=4)[1]
        == "a sample the model wrote (temperature 3, top-k 2, seed 4)"
    )


def test_report_command_passes_the_sampling_options(hihello, tmp_path):
    out = tmp_path / "r.html"
    args = ["report", "-c", str(hihello), "-o", str(out), "--chars", "40", "--units", "1"]
    r = CliRunner().invoke(
        app, [*args, "--temperature", "1.5", "--top-k", "3", "--top-p", "0.9", "--seed", "7"]
    )
    assert r.exit_code == 0, r.output
    assert "a sample the model wrote (temperature 1.5, top-k 3, top-p 0.9, seed 7)" in out.read_text("utf-8")
    r = CliRunner().invoke(app, [*args, "--top-k", "-1"])
    assert r.exit_code == 2 and "--top-k" in r.output


def test_report_shows_invisible_characters_in_the_one_notation(hihello):
    """A tab is `\\t` in the report as in every table (README), not a mark of its own."""
    from charnext import api
    from charnext.inside.report import collect
    from charnext.inside.report_html import to_html

    ckpt = api.load(hihello)
    tabbed = collect(ckpt, text="hihello" * 3, source="t", prefix="hihello", chars=12, units=0)
    tabbed.prefix_steps[0]["input"] = "\t"
    tabbed.surprise[1]["char"] = "\t"
    page = to_html(tabbed)
    assert "⇥" not in page and page.count("\\t") >= 2


WITHOUT_TORCH = """
import json, sys
from typer.testing import CliRunner
from charnext.cli.app import app

ckpt, text, out, engine = sys.argv[1:]
seen = {}
for name, args in {
    "report": ["report", "-c", ckpt, "-o", out, "--chars", "40", "--units", "2"],
    "report --file": ["report", "-c", ckpt, "-f", text, "-o", out, "--units", "2"],
    "neurons": ["neurons", "-c", ckpt, "-f", text, "--unit", "0:3"],
}.items():
    r = CliRunner().invoke(app, args + (["--engine", engine] if engine != "auto" else []))
    seen[name] = {"exit": r.exit_code, "output": r.output[:300], "torch": "torch" in sys.modules}
print(json.dumps(seen))
"""


@pytest.mark.parametrize("engine", ["auto", "torch"])
def test_report_and_neurons_import_no_torch_on_the_cpu(engine, poem_model, tmp_path):
    """On the CPU by default `report` (with or without a text) and `neurons` run on the numpy
    engine, unit recording included: no torch is imported. `--engine torch` still uses torch."""
    import json
    import os
    import subprocess
    import sys

    text = tmp_path / "poem.txt"
    text.write_text((POEM + QUOTED) * 3, encoding="utf-8")
    argv = [sys.executable, "-c", WITHOUT_TORCH, str(poem_model), str(text), str(tmp_path / "r.html"), engine]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.splitlines()[-1])
    for name, result in seen.items():
        assert result["exit"] == 0, (name, result["output"])
        assert result["torch"] == (engine == "torch"), name
    assert seen["neurons"]["output"].startswith("0:c3 (layer 0 cell 3) follows ")
