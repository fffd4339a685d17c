"""The model's web page in a real browser: headless Debian Chromium through Selenium, opened
from file://. One model, three engines: the page's probabilities equal the numpy engine's (and
so torch's) for every cell, input kind and line mode; greedy and seeded generation equal
`charnext predict`'s.

As with the report's browser test, it skips locally when Chromium, its driver or Selenium is
missing and fails in CI (the CI environment variable set).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_page import TEXT, build_model, poem_model  # noqa: F401 - the page tests' model and fixture
from test_report_browser import _requests, browser  # noqa: F401 - headless Chromium, its request log

from charnext import api
from charnext.config import SampleConfig
from charnext.inference.steps import softmax
from charnext.inside import page as web

TYPED = "the cat sat\nhello there, gen"  # typed into each page: two lines, the second unfinished
MODELS = [(cell, emb, False) for cell in ("rnn", "gru", "lstm") for emb in (0, 8)]
MODELS += [("lstm", 8, True), ("gru", 0, True), ("rnn", 8, True)]  # line mode
TOLERANCE = 1e-5  # float32 weights: the page's probabilities against the numpy engine's


def model_id(m) -> str:
    cell, emb, lines = m
    return f"{cell}-{'embedding' if emb else 'onehot'}{'-lines' if lines else ''}"


def write_page(ckpt_path, out, weights="float32", prefix=""):
    ckpt = api.load(ckpt_path, engine="numpy")
    out.write_text(api.web_page(ckpt, weights, prefix=prefix, name=ckpt_path.name).html(), encoding="utf-8")
    return out


def open_page(driver, path):
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.resolve().as_uri())
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")


def wait_read(driver, n: int):
    """Until the page has read `n` characters of its text box."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(
        lambda d: (
            d.execute_script("return charnextPage.reader.text.length") == n
            and not d.execute_script("return document.body.dataset.busy")
        )
    )


def type_into(driver, text: str):
    box = driver.find_element("id", "text")
    box.send_keys(text)
    wait_read(driver, len(box.get_attribute("value")))


def page_probs(driver) -> list:
    """The page's next-character probabilities after each position of its text."""
    return driver.execute_script("return charnextPage.reader.probs.map(p => p && Array.from(p))")


def reference_probs(ckpt, text: str, lines: bool) -> list:
    """The numpy engine's, read as the page reads: a stream from the zero state; in line mode
    each line after a newline from the zero state (as training and `evaluate` read it)."""
    model, vocab = ckpt.runner, ckpt.vocab
    if not lines:
        logits, _ = model.forward(vocab.encode_array(text)[None])
        return [None] + list(softmax(logits[0]))
    out = []
    for line in text.split("\n"):
        logits, _ = model.forward(vocab.encode_array("\n" + line)[None])
        out += list(softmax(logits[0]))
    return out


def generate_in_page(driver, n: int, temperature: float, top_k: int = 0, top_p: float = 1.0, seed: int = 0):
    """Fill in the form, press Generate, wait for the end; the generated text."""
    from selenium.webdriver.support.ui import WebDriverWait

    values = {"gen-n": n, "gen-temperature": temperature, "gen-top-k": top_k, "gen-top-p": top_p,
              "gen-seed": seed}  # fmt: skip
    for key, value in values.items():
        driver.execute_script("document.getElementById(arguments[0]).value = arguments[1]", key, str(value))
    driver.find_element("id", "gen-go").click()
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return charnextPage.lastGeneration"))
    return driver.execute_script("return charnextPage.lastGeneration.text")


def expected_generation(ckpt, prefix: str, n: int, sample: SampleConfig, lines: bool, count: int = 1) -> str:
    """What `charnext predict` generates for the page's settings (see page.js predictCommand)."""
    if not lines:
        return api.generate(ckpt, prefix, n, sample)[0]
    line = prefix.split("\n")[-1]
    return "".join(line + g + "\n" for g in api.generate(ckpt, line, 400, sample, num_samples=count))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Every cell with both input kinds, and line mode: checkpoint paths built directly."""
    folder = tmp_path_factory.mktemp("page-models")
    return {m: build_model(folder / f"{model_id(m)}.pt", *m, seed=i) for i, m in enumerate(MODELS)}


@pytest.fixture(scope="module")
def differences():
    """The largest difference per model, printed at the end (the closing note's table)."""
    found: dict[str, float] = {}
    yield found
    print("\nlargest |page - numpy| probability:", {k: f"{v:.1e}" for k, v in sorted(found.items())})


@pytest.mark.parametrize("m", MODELS, ids=model_id)
def test_page_equals_the_numpy_engine(browser, models, tmp_path, m, differences):  # noqa: F811
    cell, emb, lines = m
    path = write_page(models[m], tmp_path / "p.html")
    ckpt = api.load(models[m], engine="numpy")
    open_page(browser, path)
    assert browser.find_element("id", "engine").text == "WebAssembly SIMD"
    type_into(browser, TYPED)
    got, want = page_probs(browser), reference_probs(ckpt, TYPED, lines)
    assert len(got) == len(want) == len(TYPED) + 1
    assert (got[0] is None) == (not lines)  # a stream model predicts only after a character
    diff = max(float(np.abs(np.array(g) - w).max()) for g, w in zip(got, want) if w is not None)
    differences[f"{model_id(m)} float32 wasm"] = diff
    assert diff < TOLERANCE
    # the plain JavaScript kernel (where WebAssembly is refused) gives the same
    js = browser.execute_script(
        """const p = charnextPage, m = new charnext.CharModel(p.spec, charnext.readArrays(p.spec, p.weights),
               charnext.jsKernel()), s = m.initialState();
           return arguments[0].map(i => Array.from(charnext.softmax(m.step(i, s))));""",
        ckpt.vocab.encode_array("\n" + TYPED.split("\n")[0] if lines else TYPED).tolist(),
    )
    first = want[: len(js)] if lines else want[1 : len(js) + 1]
    js_diff = max(float(np.abs(np.array(g) - w).max()) for g, w in zip(js, first))
    differences[f"{model_id(m)} float32 js"] = js_diff
    assert js_diff < TOLERANCE
    # greedy generation is identical to predict's
    greedy = expected_generation(ckpt, TYPED, 150, SampleConfig(temperature=0), lines)
    assert generate_in_page(browser, 3 if lines else 150, 0) == greedy


@pytest.mark.parametrize("m", [("lstm", 8, False), ("gru", 0, True)], ids=model_id)
def test_a_seed_gives_predicts_text(browser, models, tmp_path, m):  # noqa: F811
    """The same seed, temperature, top-k and top-p give the same text as `charnext predict`."""
    lines = m[2]
    open_page(browser, write_page(models[m], tmp_path / "p.html", prefix=TYPED))
    wait_read(browser, len(TYPED))
    ckpt = api.load(models[m], engine="numpy")
    for temperature, top_k, top_p, seed in ((1.0, 0, 1.0, 7), (0.8, 5, 0.9, 12345678901234567890)):
        sample = SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        n = 4 if lines else 300
        got = generate_in_page(browser, n, temperature, top_k, top_p, seed)
        assert got == expected_generation(ckpt, TYPED, n, sample, lines, count=n)
        assert generate_in_page(browser, n, temperature, top_k, top_p, seed) == got  # every time
    command = browser.find_element("id", "gen-command").text
    assert command.startswith("charnext predict ") and "--seed 12345678901234567890" in command


def test_float16_page_equals_the_rounded_weights(browser, models, tmp_path, differences):  # noqa: F811
    """With float16 weights the page computes what the numpy engine does with those weights;
    against the float32 model, the difference is what rounding costs (printed)."""
    for m in MODELS:
        path = write_page(models[m], tmp_path / "p16.html", weights="float16")
        ckpt = api.load(models[m], engine="numpy")
        open_page(browser, path)
        type_into(browser, TYPED)
        got = page_probs(browser)
        want32 = reference_probs(ckpt, TYPED, m[2])
        ckpt.runner = web.as_float16(ckpt.runner)  # type: ignore[misc]
        want16 = reference_probs(ckpt, TYPED, m[2])
        d16 = max(float(np.abs(np.array(g) - w).max()) for g, w in zip(got, want16) if w is not None)
        d32 = max(float(np.abs(np.array(g) - w).max()) for g, w in zip(got, want32) if w is not None)
        differences[f"{model_id(m)} float16 vs float32 model"] = d32
        assert d16 < TOLERANCE, model_id(m)
        assert d32 < 0.05, model_id(m)  # random weights of std 0.5: far from a trained model's


def test_line_mode_reads_as_evaluate_show(browser, models, tmp_path):  # noqa: F811
    """A line model's page gives each typed character the probability `charnext evaluate --show`
    gives it: each line read after a newline from the zero state, its newline scored too."""
    m = ("lstm", 8, True)
    open_page(browser, write_page(models[m], tmp_path / "p.html"))
    type_into(browser, TYPED)
    probs = page_probs(browser)
    ckpt = api.load(models[m], engine="numpy")
    view = api.surprisal(ckpt, TYPED, 0, len(TYPED))
    index = {c: i for i, c in enumerate(ckpt.vocab.chars)}
    for t, c in enumerate(view.chars):
        assert probs[t][index[c.char]] == pytest.approx(c.prob, abs=TOLERANCE), t


def test_hihello_shows_the_lecture_table(browser, hihello, tmp_path):  # noqa: F811
    out = tmp_path / "hi.html"
    from typer.testing import CliRunner

    from charnext.cli.app import app

    assert CliRunner().invoke(app, ["page", "-c", str(hihello), "--out", str(out)]).exit_code == 0
    open_page(browser, out)
    type_into(browser, "hihell")
    rows = [[td.text for td in tr.find_elements("css selector", "td")]
            for tr in browser.find_elements("css selector", "#steps-body tr")]  # fmt: skip
    assert [r[1] for r in rows] == list("hihell")  # input
    assert [r[2].split()[0] for r in rows] == list("ihello")  # predicted
    assert [r[2].endswith("✓") for r in rows] == [True] * 5 + [False]  # each matches what follows
    assert browser.find_element("id", "prediction").text == "ihello"
    steps = api.predict(api.load(hihello), "hihell").steps
    assert [float(r[3]) for r in rows] == [round(s.probability, 3) for s in steps]
    # a character the model does not know is left out, and the page says so
    type_into(browser, "z")
    assert browser.find_element("id", "text").get_attribute("value") == "hihell"
    assert browser.find_element("id", "message").text == 'Not in the model\'s vocabulary, left out: "z"'
    # the next key keeps the message (typed on, it was wiped unread); each one left out is named,
    # an uppercase letter with the lowercase one the model knows; an emptied box starts afresh
    type_into(browser, "Eo")
    assert browser.find_element("id", "text").get_attribute("value") == "hihello"
    message = browser.find_element("id", "message").text
    assert message == 'Not in the model\'s vocabulary, left out: "z" "E" (it knows "e")', message
    from selenium.webdriver.common.keys import Keys

    type_into(browser, Keys.BACKSPACE * 7 + "h")
    assert browser.find_element("id", "message").text == ""


def test_bars_equal_predicts_last_step(browser, poem_model, tmp_path):  # noqa: F811
    """Typing a prefix shows bars whose top character and probability are predict --json's."""
    open_page(browser, write_page(poem_model, tmp_path / "poem.html"))
    type_into(browser, "Tyger")
    last = api.predict(api.load(poem_model), "Tyger").steps[-1]
    top = browser.execute_script("return charnext.topK(charnextPage.reader.probs[5], 1)[0]")
    assert top[0] == api.load(poem_model).vocab.chars.index(last.predicted)
    assert top[1] == pytest.approx(last.probability, abs=TOLERANCE)
    bar = browser.find_element("css selector", "#bars li")
    assert bar.text.split() == [last.predicted.replace(" ", "␣"), f"{100 * last.probability:.1f}%"]


def test_any_character_reaches_the_page(browser, tmp_path):  # noqa: F811
    """Characters that mean something in HTML or JSON, beyond the BMP, or invisible are typed,
    shown and predicted like any other."""
    odd = "</script><!-- & \"q\" 's' 😀\tü\u200b\n"
    path = build_model(tmp_path / "odd.pt", "gru", 8, text=odd * 3)
    prefix = '</script> & "😀"\t'  # a tab in the page's text (typing Tab accepts a prediction)
    open_page(browser, write_page(path, tmp_path / "odd.html", prefix=prefix))
    wait_read(browser, len(prefix))
    assert browser.find_element("id", "text").get_attribute("value") == prefix
    type_into(browser, "ü\u200b")
    ckpt = api.load(path, engine="numpy")
    got, want = page_probs(browser), reference_probs(ckpt, prefix + "ü\u200b", False)
    assert max(float(np.abs(np.array(g) - w).max()) for g, w in zip(got, want) if w is not None) < TOLERANCE
    inputs = [
        tr.find_elements("css selector", "td")[1].text
        for tr in browser.find_elements("css selector", "#steps-body tr")
    ]
    assert inputs[-3:] == ["\\t", "ü", "\\u200b"]  # the one notation: escapes for the invisible
    assert browser.get_log("browser") == []


def test_no_request_and_no_console_error(browser, hihello, tmp_path):  # noqa: F811
    out = write_page(hihello, tmp_path / "hi.html", weights="auto")
    browser.get_log("performance")  # forget what came before
    browser.get_log("browser")
    open_page(browser, out)
    type_into(browser, "hihe")
    generate_in_page(browser, 200, 1.0)
    own = out.resolve().as_uri()
    requests = _requests(browser)
    mine = [url for document, url in requests if document == own]
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert mine == [own] and resources == []  # the file itself, and nothing else
    internal = ("file", "chrome", "chrome-untrusted", "data")  # chrome-untrusted: its new-tab page
    assert not [url for _, url in requests if url.split(":")[0] not in internal]
    logs = browser.get_log("browser")
    assert [e for e in logs if e["level"] in ("SEVERE", "WARNING")] == [], logs


def test_works_with_the_keyboard_alone(browser, hihello, tmp_path):  # noqa: F811
    from selenium.webdriver.common.keys import Keys

    open_page(browser, write_page(hihello, tmp_path / "hi.html"))
    box = browser.find_element("id", "text")
    box.send_keys("hihel")
    wait_read(browser, 5)
    box.send_keys(Keys.TAB)  # accepts the most likely character
    wait_read(browser, 6)
    assert box.get_attribute("value") == "hihell"
    before = page_probs(browser)
    box.send_keys(Keys.BACKSPACE, Keys.BACKSPACE, "l")  # the state goes back with the text
    wait_read(browser, 5)
    assert page_probs(browser) == before[:6]
    box.send_keys("l")
    wait_read(browser, 6)
    assert browser.switch_to.active_element == box
    box.send_keys(Keys.ESCAPE, Keys.TAB)  # Escape, then Tab leaves the box
    assert browser.switch_to.active_element.get_attribute("aria-label") == "per-step predictions"
    count = browser.find_element("id", "gen-n")
    count.send_keys(Keys.CONTROL, "a")
    count.send_keys("40", Keys.ENTER)  # Enter in the form generates
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 20).until(lambda d: d.execute_script("return charnextPage.lastGeneration"))
    assert len(browser.execute_script("return charnextPage.lastGeneration.text")) == 40
    # every control can be reached with Tab, in reading order (Stop is disabled when idle)
    box.click()
    box.send_keys(Keys.ESCAPE)
    order = []
    for _ in range(8):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        el = browser.switch_to.active_element
        order.append(el.get_attribute("id") or el.get_attribute("aria-label"))
    assert order == ["per-step predictions", "gen-n", "gen-temperature", "gen-top-k", "gen-top-p",
                     "gen-seed", "gen-go", "out"]  # fmt: skip


def test_reads_on_a_phone(browser, poem_model, tmp_path):  # noqa: F811
    prefix = "Tyger Tyger, burning bright,\nIn the forests of the night; What immortal hand"  # a long line
    open_page(browser, write_page(poem_model, tmp_path / "poem.html", prefix=prefix))
    browser.set_window_size(390, 844)
    try:
        wait_read(browser, len(prefix))
        generate_in_page(browser, 300, 0.8)
        # nothing wider than the screen: the table scrolls inside its own box
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        for section in ("type", "steps", "generate", "card"):
            el = browser.find_element("id", section)
            assert el.is_displayed() and el.size["width"] <= 390, section
        text = browser.find_element("id", "text")
        bars = browser.find_element("id", "bars")
        assert bars.location["y"] > text.location["y"]  # one column: the bars under the text box
    finally:
        browser.set_window_size(1000, 1400)
