"""`charnext serve` as a real process on a loopback port, with real clients: the official
`openai` package (plain and streaming), httpx and raw sockets. Concurrent requests, seeded ones
checked against `predict`; a client gone mid-stream; every bad input; SIGTERM mid-stream."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from conftest import POEM  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from charnext import api  # noqa: E402
from charnext.cli.app import app  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`charnext serve` in a subprocess: its base URL, its log, and how it ended."""

    def __init__(self, *args: str, env: dict | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "charnext", "serve", "--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
            if self.proc.poll() is not None:
                raise AssertionError(self.proc.stderr.read())
        raise AssertionError("the server did not start")

    def stop(self, sig=signal.SIGTERM, timeout: float = 15) -> tuple[int, str]:
        self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return self.proc.returncode, err


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "poem.pt"
    api.train(POEM * 75, out=path, hidden_size=48, num_layers=2, steps=60, lr=0.02, precision="fp32",
              device="cpu", seq_len=32, batch_size=8)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def server(model):
    s = Server("-c", str(model), "--name", "poem", "--max-streams", "48")
    yield s
    code, err = s.stop()
    assert code == 0, err
    assert "Traceback" not in err


def _predict(model: Path, prompt: str, seed: int, length: int) -> str:
    args = [
        "predict",
        prompt,
        "-c",
        str(model),
        "--seed",
        str(seed),
        "--length",
        str(length),
        "--temperature",
        "1",
    ]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["generated"]


def test_the_openai_client_completes_plain_and_streaming(server, model):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    assert [m.id for m in client.models.list().data] == ["poem"]
    done = client.completions.create(model="poem", prompt="Tyger", max_tokens=30, temperature=1.0, seed=7)
    assert done.choices[0].text == _predict(model, "Tyger", 7, 30)
    assert done.choices[0].finish_reason == "length"
    assert done.usage.prompt_tokens == 5 and done.usage.completion_tokens == 30
    parts, reasons = [], []
    for event in client.completions.create(model="poem", prompt="Tyger", max_tokens=30, temperature=1.0,
                                           seed=7, stream=True):  # fmt: skip
        parts.append(event.choices[0].text)
        reasons.append(event.choices[0].finish_reason)
    assert "".join(parts) == done.choices[0].text and len(parts) > 1
    assert reasons[-1] == "length" and set(reasons[:-1]) == {None}


def test_32_concurrent_streams_each_draw_what_predict_draws(server, model):
    prompts = ["Tyger", "In the", "What immortal", "burning bright"]

    def ask(i: int) -> tuple[int, str]:
        body = {"model": "poem", "prompt": prompts[i % 4], "max_tokens": 60, "temperature": 1.0, "seed": i,
                "stream": True}  # fmt: skip
        text = []
        with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=60) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    text.append(json.loads(line[6:])["choices"][0]["text"])
        return i, "".join(text)

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = dict(pool.map(ask, range(32)))
    for i in (0, 5, 18, 31):  # seeded completions equal predict's, whatever else was drawn beside them
        assert results[i] == _predict(model, prompts[i % 4], i, 60), i
    assert all(len(t) == 60 for t in results.values())


def test_n_choices_logprobs_echo_best_of_and_stops(server, model):
    def complete(**body):
        r = httpx.post(server.url + "/v1/completions", json={"model": "poem", **body}, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    three = complete(prompt="Tyger", max_tokens=20, n=3, temperature=1.0, seed=4)
    samples = api.generate(
        api.load(model), "Tyger", 20, api.SampleConfig(temperature=1.0, seed=4), num_samples=3
    )
    assert [c["text"] for c in three["choices"]] == samples and [c["index"] for c in three["choices"]] == [
        0,
        1,
        2,
    ]
    echoed = complete(prompt="Tyger", max_tokens=5, temperature=0, echo=True, logprobs=2)
    choice = echoed["choices"][0]
    assert choice["text"].startswith("Tyger") and len(choice["text"]) == 10
    lp = choice["logprobs"]
    assert lp["tokens"] == list(choice["text"]) and lp["token_logprobs"][0] is None
    assert lp["text_offset"] == list(range(10)) and all(len(t) == 2 for t in lp["top_logprobs"][1:])
    best = complete(prompt="Tyger", max_tokens=20, n=1, best_of=4, temperature=1.0, seed=4)
    assert best["choices"][0]["text"] in api.generate(
        api.load(model), "Tyger", 20, api.SampleConfig(temperature=1.0, seed=4), num_samples=4
    )
    whole = complete(prompt="Tyger", max_tokens=80, temperature=1.0, seed=9)["choices"][0]["text"]
    stop = whole[10:12]
    cut = complete(prompt="Tyger", max_tokens=80, temperature=1.0, seed=9, stop=[stop, "zzz"])["choices"][0]
    assert cut["text"] == whole[: whole.find(stop)] and cut["finish_reason"] == "stop"
    two = complete(prompt=["Tyger", "In the"], max_tokens=5, temperature=0)
    assert [c["index"] for c in two["choices"]] == [0, 1]


def test_a_client_gone_mid_stream_stalls_nobody(server):
    body = {"model": "poem", "prompt": "Tyger", "max_tokens": 4000, "temperature": 1.0, "stream": True}
    with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=30) as r:
        for _ in r.iter_lines():
            break  # the first event, then gone
    health = httpx.get(server.url + "/health", timeout=5).json()
    assert health["status"] == "ok"
    body = {"model": "poem", "prompt": "Tyger", "max_tokens": 10}
    r = httpx.post(server.url + "/v1/completions", json=body, timeout=30)
    assert r.status_code == 200 and len(r.json()["choices"][0]["text"]) == 10


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        (b"{not json", 400, None, "not valid JSON"),
        (b"[1, 2]", 400, None, "JSON object"),
        ({"model": "poem", "prompt": "Tyger", "max_tokens": "ten"}, 400, "max_tokens", "whole number"),
        ({"model": "poem", "prompt": 7}, 400, "prompt", "a text"),
        ({"model": "poem", "prompt": "Tyger", "temperature": -1}, 400, "temperature", "0 (greedy) or more"),
        ({"model": "poem", "prompt": "Tyger", "n": 0}, 400, "n", "at least 1"),
        ({"model": "poem", "prompt": "Tyger", "stop": ["a", "b", "c", "d", "e"]}, 400, "stop", "at most 4"),
        ({"model": "poem", "prompt": "Tyger", "max_tokens": 10**6}, 400, "max_tokens", "at most"),
        ({"model": "poem", "prompt": "Tyger", "n": 16, "max_tokens": 4096}, 400, "max_tokens", "at most"),
        ({"model": "poem", "prompt": "Tyger", "best_of": 3, "stream": True}, 400, "best_of", "stream"),
        ({"model": "nope", "prompt": "Tyger"}, 404, "model", "not served here"),
        ({"model": "poem", "prompt": "Tyger\u00e9"}, 400, "prompt", "'é'"),
    ],
)
def test_each_bad_input_gets_its_status_and_one_line(server, body, status, param, words):
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = httpx.post(server.url + "/v1/completions", timeout=10, **kwargs)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param
    assert words in error["message"] and "\n" not in error["message"] and "Traceback" not in error["message"]


def test_unknown_characters_can_be_skipped_and_other_ends_answer(server):
    body = {"model": "poem", "prompt": "Tygeré", "max_tokens": 3, "temperature": 0, "skip_unknown": True}
    assert httpx.post(server.url + "/v1/completions", json=body, timeout=10).status_code == 200
    chat = httpx.post(server.url + "/v1/chat/completions", json={"model": "poem", "messages": []}, timeout=10)
    assert chat.status_code == 404 and "completion model" in chat.json()["error"]["message"]
    assert httpx.get(server.url + "/v1/nothing", timeout=10).status_code == 404
    assert httpx.get(server.url + "/v1/completions", timeout=10).status_code == 405
    big = httpx.post(server.url + "/v1/completions", content=b" " * (2 << 20), timeout=10)
    assert big.status_code == 413


def test_past_the_stream_limit_a_client_gets_429(model):
    s = Server("-c", str(model), "--max-streams", "2")
    try:
        body = {"model": "poem", "prompt": "Tyger", "max_tokens": 4096, "n": 2, "temperature": 1.0}

        def ask(_):
            return httpx.post(s.url + "/v1/completions", json=body, timeout=60)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(8)))
        busy = [r for r in answers if r.status_code == 429]
        assert busy and all(r.status_code in (200, 429) for r in answers)
        assert all(
            r.headers["retry-after"] == "1" and r.json()["error"]["type"] == "rate_limit_error" for r in busy
        )
    finally:
        code, err = s.stop()
    assert code == 0 and "POST /v1/completions 429" in err


def test_sigterm_ends_the_streams_in_flight_cleanly(model):
    s = Server("-c", str(model))
    body = {"model": "poem", "prompt": "Tyger", "max_tokens": 4096, "temperature": 1.0, "stream": True}
    lines = []
    with httpx.stream("POST", s.url + "/v1/completions", json=body, timeout=30) as r:
        for line in r.iter_lines():
            if line:
                lines.append(line)
            if len(lines) == 3:
                s.proc.send_signal(signal.SIGTERM)
    code, err = s.proc.wait(timeout=15), s.proc.stderr.read()
    events = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
    assert lines[-1] == "data: [DONE]" and events[-1]["choices"][0]["finish_reason"] == "length"
    assert code == 0 and "Traceback" not in err and "stopped" in err


def test_an_api_key_is_asked_for_and_other_hosts_need_one(model):
    s = Server("-c", str(model), env={"CHARNEXT_API_KEY": "sesame"})
    try:
        body = {"model": "poem", "prompt": "Tyger", "max_tokens": 3}
        assert httpx.post(s.url + "/v1/completions", json=body, timeout=10).status_code == 401
        wrong = httpx.post(
            s.url + "/v1/completions", json=body, headers={"Authorization": "Bearer open"}, timeout=10
        )
        assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
        client = openai.OpenAI(base_url=s.url + "/v1", api_key="sesame")
        assert len(client.completions.create(model="poem", prompt="Tyger", max_tokens=3).choices[0].text) == 3
    finally:
        assert s.stop()[0] == 0
    refused = CliRunner().invoke(
        app, ["serve", "-c", str(model), "--host", "0.0.0.0"], env={"CHARNEXT_API_KEY": ""}
    )
    assert refused.exit_code == 2 and "--api-key" in refused.stderr


def test_the_access_log_has_a_line_per_request(model):
    s = Server("-c", str(model))
    httpx.post(
        s.url + "/v1/completions", json={"model": "poem", "prompt": "Tyger", "max_tokens": 7}, timeout=10
    )
    httpx.post(s.url + "/v1/completions", content=b"{", timeout=10)
    code, err = s.stop()
    lines = err.splitlines()
    assert code == 0 and lines[0].startswith("serving poem at http://127.0.0.1:")
    assert any(re_line.startswith("POST /v1/completions 200 7 chars") for re_line in lines)
    assert any(re_line.startswith("POST /v1/completions 400 0 chars") for re_line in lines)
    assert "\x1b[" not in err and "Traceback" not in err


def test_the_server_runs_without_torch(model):
    """On the numpy engine: with torch made unimportable, it starts, answers and stops."""
    port = _free_port()
    code = ("import sys; sys.modules['torch'] = None; "
            f"sys.argv = ['charnext', 'serve', '-c', {str(model)!r}, '--port', '{port}']; "
            "from charnext.cli.app import main; main()")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        body = {"model": "poem", "prompt": "Tyger", "max_tokens": 5}
        assert httpx.post(url + "/v1/completions", json=body, timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err


def test_a_line_model_completes_one_line(tmp_path, names):
    path = tmp_path / "names.pt"
    api.train(names, out=path, lines=True, hidden_size=32, num_layers=1, steps=40, device="cpu",
              precision="fp32")  # fmt: skip
    s = Server("-c", str(path))
    try:
        body = {"model": "names", "prompt": "em", "max_tokens": 30, "n": 4, "temperature": 1.0, "seed": 2}
        choices = httpx.post(s.url + "/v1/completions", json=body, timeout=10).json()["choices"]
    finally:
        assert s.stop()[0] == 0
    expected = api.generate(
        api.load(path), "em", 30, api.SampleConfig(temperature=1.0, seed=2), num_samples=4
    )
    assert [c["text"] for c in choices] == expected and all("\n" not in c["text"] for c in choices)
    assert {c["finish_reason"] for c in choices} <= {"stop", "length"}
