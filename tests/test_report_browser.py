"""The report in a real browser: headless Debian Chromium through Selenium.

Locally the test skips when Chromium, its driver or Selenium is missing; in CI (the CI
environment variable set, as `.ci/run` does) it fails instead, so it can never be skipped there.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest
from test_report import poem_model, report_file  # noqa: F401 - the report's fixtures

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import harness  # noqa: E402 - benchmarks/harness.py: the one browser check (Selenium, chromium, its driver)

SECTIONS = ("summary", "curves", "predictions", "surprise", "units")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (harness.browser: a fresh profile in a short path, whatever TMPDIR is),
    nothing in the background that reaches the network, its console and requests logged."""
    missing = harness.browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {missing}")
        pytest.skip(missing)
    with harness.browser(
        "--disable-component-update", "--disable-sync", "--window-size=1000,1400", log=True
    ) as driver:
        yield driver


def _requests(driver) -> list[tuple[str, str]]:
    """(document, URL) of each request made since the performance log was last read."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            params = message["params"]
            urls.append((params.get("documentURL", ""), params["request"]["url"]))
    return urls


@pytest.fixture(scope="module")
def page(browser, report_file):  # noqa: F811
    """The report, loaded; `page.requests` lists every request made while it loaded."""
    browser.get(report_file.resolve().as_uri())
    browser.requests = _requests(browser)
    return browser


def test_page_renders_with_every_section(page, tmp_path):
    from PIL import Image

    assert page.title.startswith("charnext report: poem.pt")
    for section in SECTIONS:
        el = page.find_element("id", section)
        assert el.is_displayed() and el.size["height"] > 40, section
    assert len(page.find_elements("css selector", "#surprise .heat span")) == 300
    assert len(page.find_elements("css selector", "#units .heat")) == 4
    assert page.find_elements("css selector", "#curves svg polyline")
    png = page.get_screenshot_as_png()
    shot = tmp_path / "report.png"
    shot.write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    background = max(colours)[0] / (image.width * image.height)
    print(f"screenshot {shot}: {image.width}x{image.height}, {len(colours)} colours, "
          f"{1 - background:.0%} not background")  # fmt: skip
    assert len(colours) > 50 and background < 0.95  # text, curves and heat maps, not a blank page


def test_console_has_no_errors(page):
    logs = page.get_log("browser")
    print("console:", logs)
    assert [e for e in logs if e["level"] in ("SEVERE", "WARNING")] == []


def test_no_request_leaves_the_file(page, report_file):  # noqa: F811
    own = report_file.resolve().as_uri()
    requests = page.requests + _requests(page)
    resources = page.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    mine = [url for document, url in requests if document == own]
    print("requests of the report:", mine, "resources:", resources)
    assert mine == [own]  # the file itself, and nothing else
    assert resources == []
    # nothing at all went to the network (the browser's own start page loads chrome:// files)
    internal = ("file", "chrome", "chrome-untrusted", "data")  # chrome-untrusted: its new-tab page
    assert not [url for _, url in requests if url.split(":")[0] not in internal]


def test_hover_shows_the_alternatives(page):
    from selenium.webdriver.common.action_chains import ActionChains

    span = page.find_elements("css selector", "#surprise .heat span")[5]
    page.execute_script("arguments[0].scrollIntoView({block: 'center'})", span)
    ActionChains(page).move_to_element(span).perform()
    info = page.find_element("id", "info").text
    assert "expected" in info and info == span.get_attribute("title")
    # the bar shows only while a character is hovered: it never covers the chart's labels
    page.execute_script("document.body.click()")
    assert not page.find_element("id", "info").is_displayed()


def test_reads_on_a_phone_and_in_print(page):
    page.set_window_size(390, 844)
    try:
        # nothing wider than the screen: wide tables scroll inside their own box
        assert page.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        # the per-step table fits a phone: its top-k pairs wrap between pairs, never inside one
        box = page.find_element("css selector", "#predictions .scroll")
        assert box.get_property("scrollWidth") <= box.get_property("clientWidth") + 1
        alt = page.find_element("css selector", "#predictions .alt")
        assert alt.value_of_css_property("white-space") == "nowrap"
        # the chart's labels are at least 10 px tall on the phone's screen
        label = page.find_element("css selector", "#curves svg text")
        assert label.size["height"] >= 10
    finally:
        page.set_window_size(1000, 1400)
    page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        assert page.find_element("id", "info").value_of_css_property("display") == "none"
        assert page.find_element("id", "units").is_displayed()
    finally:
        page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
