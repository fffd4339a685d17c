"""`charnext page`: the file it writes, its weights, the float16 choice, PCG32 and the kernel's
build (here); the page in a real browser (test_page_browser.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from charnext import api
from charnext.cli.app import app
from charnext.config import ModelConfig, SampleConfig, TrainConfig
from charnext.inference.pcg32 import Pcg32, Pcg32Rows
from charnext.inside import page as web
from charnext.modeling.model import CharModel
from charnext.modeling.numpy_model import NumpyModel
from charnext.storage.checkpoint import save
from charnext.text.vocab import Vocab

TEXT = "the cat sat on the mat\nhello there, general\nquick brown fox\n"


def build_model(
    path, cell="lstm", embedding_size=8, lines=False, hidden_size=24, num_layers=2, seed=0, text=TEXT
):
    """A checkpoint built directly: random weights large enough to saturate some gates, small
    enough that the state does not amplify float32 rounding (at std 0.5 a 2-layer RNN does:
    torch and numpy then differ by 3e-5 after 26 characters; at 0.35 by under 1e-6)."""
    vocab = Vocab.from_text(text)
    torch.manual_seed(seed)
    model = CharModel(ModelConfig(len(vocab), cell, hidden_size, num_layers, embedding_size))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.35)
    return save(path, model, vocab, train_config=TrainConfig(lines=lines).to_dict(), step=0)


def page_parts(html: str) -> dict:
    """The page's CSP, script, style and data blocks."""
    return {
        "csp": re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)[1],
        "style": re.search(r"<style>(.*?)</style>", html, re.S)[1],
        "script": re.search(r"<script>(.*?)</script>", html, re.S)[1],
        "spec": json.loads(re.search(r'id="spec">(.*?)</script>', html, re.S)[1]),
        "weights": base64.b64decode(re.search(r'id="weights">(.*?)</script>', html, re.S)[1]),
        "kernel": base64.b64decode(re.search(r'id="kernel">(.*?)</script>', html, re.S)[1]),
    }


def sha(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def unpack(spec: dict, blob: bytes) -> dict[str, np.ndarray]:
    """The page's arrays, as charnext.js reads them."""
    flat = np.frombuffer(blob, dtype=np.dtype(spec["dtype"]).newbyteorder("<")).astype(np.float32)
    return {name: flat[o : o + r * c].reshape(r, c) for name, (o, r, c) in spec["arrays"].items()}


# ---------------------------------------------------------------------------------------------
# the file


def test_page_is_one_self_contained_file(hihello, tmp_path):
    out = tmp_path / "hi.html"
    r = CliRunner().invoke(app, ["page", "-c", str(hihello), "--out", str(out), "--prefix", "hihell"])
    assert r.exit_code == 0, r.output
    assert f"page written to {out}" in r.output and "weights float" in r.output
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    # nothing to fetch: no external source, link, import or URL at all
    assert not re.search(r"\b(src|href)\s*=|url\(|@import|https?://", html)
    parts = page_parts(html)
    # the report's policy, with 'wasm-unsafe-eval' only (it compiles the kernel the page holds)
    assert parts["csp"] == (
        f"default-src 'none'; style-src {sha(parts['style'])}; script-src {sha(parts['script'])} "
        "'wasm-unsafe-eval'; base-uri 'none'; form-action 'none'"
    )
    assert html.count("<script>") == 1 and html.count("<style>") == 1  # the only code, hashed above
    assert parts["kernel"] == web.kernel_bytes()
    spec = parts["spec"]
    assert spec["vocab"] == list("hielo") and spec["cell"] == "lstm" and spec["line_mode"] is False
    assert ">hihell</textarea>" in html  # the page opens with the prefix


def test_weights_are_the_numpy_engines_folded_arrays(tmp_path):
    ckpt = api.load(build_model(tmp_path / "g.pt", "gru", 0), engine="numpy")
    for dtype in ("float32", "float16"):
        data = api.web_page(ckpt, dtype)
        spec = page_parts(data.html())["spec"]
        assert spec["dtype"] == dtype and data.precision.delta is None  # forced: nothing measured
        arrays = unpack(spec, data.weights)
        folded = web.folded_arrays(ckpt.runner)
        assert list(arrays) == list(folded)  # l0.table, l0.w_hh, l0.b_hn, l1.w_ih, ..., head.b
        assert set(arrays) >= {"l0.table", "l1.w_ih", "l1.b_in", "l1.b_hn", "head.w", "head.b"}
        for name, a in folded.items():
            want = a if dtype == "float32" else a.astype(np.float16).astype(np.float32)
            np.testing.assert_array_equal(arrays[name], want, err_msg=name)


def test_float16_copy_rounds_every_weight_and_leaves_the_model(tmp_path):
    model = api.load(build_model(tmp_path / "m.pt"), engine="numpy").runner
    before = {k: v.copy() for k, v in web.folded_arrays(model).items()}
    half = web.as_float16(model)
    for name, a in web.folded_arrays(half).items():
        np.testing.assert_array_equal(a, before[name].astype(np.float16).astype(np.float32))
        np.testing.assert_array_equal(web.folded_arrays(model)[name], before[name])


@pytest.mark.parametrize("lines", [False, True], ids=["stream", "lines"])
def test_the_check_scores_as_evaluate_does(tmp_path, lines):
    """The loss the float16 check compares is the loss `charnext evaluate` reports."""
    path = build_model(tmp_path / "m.pt", "lstm", 8, lines=lines)
    ckpt = api.load(path, engine="numpy")
    loss = web.text_loss(ckpt.runner, ckpt.vocab, TEXT, lines)
    assert loss == pytest.approx(api.evaluate(ckpt, TEXT).loss, abs=1e-5)


def test_auto_takes_float16_only_where_the_loss_barely_moves(tmp_path, monkeypatch, hihello):
    ckpt = api.load(hihello, engine="numpy")
    data = api.web_page(ckpt, "auto", text="hihello" * 20)
    check = data.precision
    assert check.dtype == "float16" and abs(check.delta) < web.FLOAT16_TOLERANCE
    assert "characters of the text given" in check.text
    half = web.text_loss(web.as_float16(ckpt.runner), ckpt.vocab, ("hihello" * 20)[:3000], False)
    assert check.loss16 == pytest.approx(half)
    monkeypatch.setattr(web, "FLOAT16_TOLERANCE", abs(check.delta) / 2)  # now it moves too much
    assert api.web_page(ckpt, "auto", text="hihello" * 20).precision.dtype == "float32"
    sampled = api.web_page(ckpt, "auto").precision  # without a text: the model's own sample
    assert "characters the model wrote" in sampled.text and sampled.loss32 is not None


def test_line_model_check_reads_lines(tmp_path):
    ckpt = api.load(build_model(tmp_path / "n.pt", "rnn", 0, lines=True), engine="numpy")
    check = api.web_page(ckpt).precision
    assert "lines the model wrote" in check.text and check.loss16 is not None
    assert api.web_page(ckpt).spec["line_mode"] is True


def test_model_card_shows_what_inspect_leads_with(hihello):
    card = dict(api.web_page(api.load(hihello, engine="numpy"), "float32").card)
    assert card["cell"] == "lstm" and card["layers"] == "1 × 32 units"
    assert card["vocabulary"] == "5 characters: h i e l o"
    assert card["training text"] == "a text given on the command line, 7 characters"
    assert card["weights in this page"] == "float32 (as asked)"


def test_model_card_and_inspect_word_the_model_alike(hihello):
    """The model's rows are written once (storage.describe.model_rows): the card shows them as
    inspect does, its vocabulary row with the characters added."""
    ckpt = api.load(hihello, engine="numpy")
    card = dict(api.web_page(ckpt, "float32").card)
    rows = dict(api.describe(ckpt).model_rows())
    assert list(rows) == ["cell", "layers", "input", "dropout", "vocabulary", "parameters"]
    assert all(card[name] == rows[name] for name in ("cell", "layers", "input", "parameters"))
    assert card["vocabulary"] == rows["vocabulary"] + ": h i e l o"


def test_bad_input_is_one_line(hihello, tmp_path):
    out = tmp_path / "x.html"
    r = CliRunner().invoke(app, ["page", "-c", str(hihello), "--out", str(out), "--prefix", "hiz"])
    assert r.exit_code == 1
    assert r.output.strip() == "error: the prefix has characters the model does not know: 'z'"
    assert not out.exists()
    r = CliRunner().invoke(app, ["page", "-c", str(tmp_path / "none.pt")])
    assert r.exit_code == 1 and r.output.startswith("error: ") and len(r.output.strip().splitlines()) == 1
    r = CliRunner().invoke(app, ["page", "-c", str(hihello), "--weights", "float8"])
    assert r.exit_code == 2


# ---------------------------------------------------------------------------------------------
# the generator both sides draw from


def test_pcg32_gives_the_reference_outputs():
    # pcg32-global-demo's first outputs for seed 42, stream 54 (pcg-random.org's C reference)
    rng = Pcg32(42, 54)
    assert [rng.next_u32() for _ in range(6)] == [
        0xA15C02B7, 0x7B47F409, 0xBA1D3330, 0x83D2F293, 0xBFA4784B, 0xCBED606E,
    ]  # fmt: skip
    assert 0 <= Pcg32(-1).random() < 1 and Pcg32(2**64 + 5).next_u32() == Pcg32(5).next_u32()


def test_pcg32_rows_draw_what_each_generator_draws():
    # the batch of generators that a Sampler steps with numpy: row i is generator i, bit for bit
    seeds = [(0, 0), (42, 54), (-1, 3), (2**64 + 5, 2**40), (2**63 + 7, 1)]
    alone = [Pcg32(seed, stream) for seed, stream in seeds]
    rows = Pcg32Rows([Pcg32(seed, stream) for seed, stream in seeds])
    for _ in range(200):
        assert rows.random().tolist() == [g.random() for g in alone]
    # the first rows only: the others do not move
    assert rows.random(2).tolist() == [g.random() for g in alone[:2]]
    rows = rows.rows([2, 3, 4]).join(rows.rows([0, 1]))
    assert rows.random().tolist() == [g.random() for g in alone[2:] + alone[:2]]


def test_a_sampler_draws_the_same_whether_its_rows_step_alone_or_together():
    # below ROWS_AT_ONCE rows a Sampler steps Python generators, from there numpy arrays of them
    from charnext.inference.sampling import ROWS_AT_ONCE, Sampler, choose

    sample = SampleConfig(temperature=1.0, seed=11)
    sampler, alone = Sampler(sample), []
    rng = np.random.default_rng(0)
    for rows in (2, 2, ROWS_AT_ONCE + 3, ROWS_AT_ONCE + 3, 5):
        logits = rng.standard_normal((rows, 30)).astype(np.float32)
        alone += [Pcg32(11, i) for i in range(len(alone), rows)]
        assert sampler(logits).tolist() == choose(logits, sample, alone[:rows]).tolist()


def test_sample_i_draws_from_stream_i(poem_model):
    ckpt = api.load(poem_model, engine="numpy")
    sample = SampleConfig(temperature=1.0, seed=3)
    three = api.generate(ckpt, "Tyger", 60, sample, num_samples=3)
    assert three[0] == api.generate(ckpt, "Tyger", 60, sample)[0]
    assert len(set(three)) == 3


# ---------------------------------------------------------------------------------------------
# the WebAssembly kernel: built from its source


def test_kernel_wasm_is_what_its_source_assembles_to(tmp_path):
    tool = shutil.which("wat2wasm")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("wat2wasm (apt-get install wabt) is needed in CI to rebuild the kernel")
        pytest.skip("wat2wasm is not installed (apt-get install wabt)")
    built = tmp_path / "kernel.wasm"
    subprocess.run([tool, str(web.WEB / "kernel.wat"), "-o", str(built)], check=True)
    assert built.read_bytes() == web.kernel_bytes()


@pytest.fixture(scope="module")
def poem_model(tmp_path_factory):
    """A small LSTM trained briefly on verse."""
    from conftest import POEM

    path = tmp_path_factory.mktemp("page") / "poem.pt"
    api.train(POEM * 20, out=path, steps=40, lr=0.01, hidden_size=24, num_layers=2, embedding_size=8,
              precision="fp32", device="cpu", seq_len=32)  # fmt: skip
    return path


def test_numpy_model_built_from_any_engine(hihello):
    """A checkpoint loaded for torch still makes the numpy engine's page."""
    torch_ckpt = api.load(hihello, engine="torch")
    numpy_ckpt = api.load(hihello, engine="numpy")
    a = api.web_page(torch_ckpt, "float32").weights
    b = api.web_page(numpy_ckpt, "float32").weights
    assert a == b
    assert isinstance(numpy_ckpt.runner, NumpyModel)


def test_report_says_how_to_make_the_page(hihello, tmp_path):
    """The report links the live view (it would outweigh the report) with its size, estimated
    to within a few percent."""
    out = tmp_path / "r.html"
    r = CliRunner().invoke(app, ["report", "-c", str(hihello), "-o", str(out), "--chars", "40"])
    assert r.exit_code == 0, r.output
    report = re.sub(r"<[^>]+>", "", out.read_text(encoding="utf-8"))
    assert "charnext page -c hi.pt --out hi.html" in report
    size = float(re.search(r"about ([\d.]+) MB with float16 weights", report)[1]) * 1e6
    ckpt = api.load(hihello, engine="numpy")
    real = len(api.web_page(ckpt, "float16").html().encode())
    assert abs(size - real) < 0.1e6 and abs(web.page_size(ckpt.config) - real) / real < 0.05
