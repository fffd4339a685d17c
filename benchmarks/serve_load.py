"""`charnext serve` under load: C concurrent streaming clients, each asking for `--chars`
characters; beside them, in the same run, offline generation of C streams (api.streams, the
same batched step without HTTP).

    python benchmarks/serve_load.py                              # 1, 8, 32 and 128 clients
    python benchmarks/serve_load.py --clients 32 --servers 2     # two processes, clients split
    python benchmarks/serve_load.py --smoke

For each number of clients: the aggregate characters a second (all clients' characters over the
wall time from the first request to the last character), the time to the first character and
the gap between characters (p50 and p99 over every client), the errors, the 429s (past
--max-streams), the server's resident memory, and the offline rate. The model is the untrained
test model (a 2x256 LSTM: the same arithmetic as a trained one) unless --checkpoint names one.
The clients are threads of this process, on raw sockets, so that the client costs little. With
`--servers N`, N `charnext serve` processes listen on N ports and client i talks to server
i mod N: what any HTTP load balancer in front of them does.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

PROMPT = "ROMEO:\nWhat light thr"  # 20 characters


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(ckpt: Path, port: int, max_streams: int, threads: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "charnext", "serve", "-c", str(ckpt), "--name", "m", "--port", str(port),
           "--max-streams", str(max_streams)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise SystemExit(f"the server on port {port} did not start: {proc.stderr.read()}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_client(port: int, chars: int, seed: int) -> dict:
    """A streaming request on a raw socket: when each character came, or the error."""
    body = json.dumps({"model": "m", "prompt": PROMPT, "max_tokens": chars, "temperature": 1.0, "seed": seed,
                       "stream": True}).encode()  # fmt: skip
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()  # fmt: skip
    start = time.perf_counter()
    times: list[float] = []
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        s.sendall(head + body)
        buffer = b""
        status = None
        while True:
            part = s.recv(65536)
            if not part:
                break
            now = time.perf_counter()
            buffer += part
            if status is None and b"\r\n" in buffer:
                status = int(buffer.split(b" ", 2)[1])
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                line = event.split(b"data: ", 1)[-1]
                if line.startswith(b"{") and b'"choices"' in line:
                    text = json.loads(line)["choices"][0]["text"]
                    times += [now - start] * len(text)
    return {"status": status, "times": times, "start": start}


def load(ports: list[int], clients: int, chars: int) -> dict:
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        t0 = time.perf_counter()
        results = list(pool.map(lambda i: one_client(ports[i % len(ports)], chars, i), range(clients)))
        wall = time.perf_counter() - t0
    ok = [r for r in results if r["status"] == 200 and len(r["times"]) == chars]
    busy = sum(r["status"] == 429 for r in results)
    first = [r["times"][0] for r in ok]
    gaps = [b - a for r in ok for a, b in zip(r["times"], r["times"][1:]) if b > a]
    gaps += [0.0] * sum(sum(1 for a, b in zip(r["times"], r["times"][1:]) if b <= a) for r in ok)
    q = statistics.quantiles
    return {
        "clients": clients,
        "served_chars_per_s": sum(len(r["times"]) for r in ok) / wall,
        "first_char_p50_ms": 1000 * statistics.median(first) if first else None,
        "first_char_p99_ms": 1000 * q(first, n=100)[98]
        if len(first) > 1
        else (1000 * first[0] if first else None),
        "gap_p50_ms": 1000 * statistics.median(gaps) if gaps else None,
        "gap_p99_ms": 1000 * q(gaps, n=100)[98] if len(gaps) > 1 else None,
        "ok": len(ok),
        "busy_429": busy,
        "errors": clients - len(ok) - busy,
    }


def offline(model, streams: int, chars: int) -> float:
    """Characters a second of `streams` streams drawn together without HTTP (api.streams), as
    the server draws them: the same prompt, each its own seed (the median of 3 runs)."""
    from charnext import api
    from charnext.config import SampleConfig

    specs = [api.StreamSpec(PROMPT, chars, SampleConfig(temperature=1.0, seed=i)) for i in range(streams)]
    runs = harness.median_of_runs(lambda: api.streams(model).run(specs), 3)  # a short run: the median of 3
    return streams * chars / runs.median


def cell(a, ports: list[int], servers: list, model, clients: int) -> dict:
    """One number of clients, --runs times, each load beside an offline run: the run of median
    served rate, with the median offline rate (a 200-character request lasts a fraction of a
    second: one run of it moves by 20% from one try to the next)."""
    loads, rates = [], []
    for _ in range(a.runs):
        loads.append(load(ports, clients, a.chars))
        rates.append(offline(model, min(clients, a.max_streams * a.servers), a.chars))
    figures = sorted(loads, key=lambda f: f["served_chars_per_s"])[len(loads) // 2]
    figures["server_rss_mb"] = max(rss_mb(s.pid) for s in servers)
    figures["offline_chars_per_s"] = statistics.median(rates)
    figures["served_over_offline"] = figures["served_chars_per_s"] / figures["offline_chars_per_s"]
    figures["servers"] = a.servers
    figures["runs"] = a.runs
    return figures


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--checkpoint", type=Path, help="the model [default: the untrained 2x256 LSTM]")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 128])
    p.add_argument("--chars", type=int, default=200, help="characters each client asks for")
    p.add_argument("--servers", type=int, default=1, help="server processes (clients split among them)")
    p.add_argument("--max-streams", type=int, default=64, help="the servers' --max-streams")
    p.add_argument(
        "--threads", type=int, default=1, help="BLAS threads of each server and of the offline run"
    )
    p.add_argument("--runs", type=int, default=3, help="runs of each number of clients (the median)")
    a = p.parse_args()
    harness.smoke(a, clients=[1, 4], chars=20, runs=1)
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(a.threads)
    ckpt = a.checkpoint or harness.untrained_lstm(harness.SHAKESPEARE_CHARS, tiny=a.smoke)
    from charnext import api

    model = api.load(ckpt, engine="numpy")
    offline(model, 1, 5)  # warm, as the servers are: the first draw probes the model's products
    ports = [free_port() for _ in range(a.servers)]
    servers = [start_server(ckpt, port, a.max_streams, a.threads) for port in ports]
    records = []
    try:
        load(ports, 1, 5)  # warm: the first request of each server probes its products
        for clients in a.clients:
            records.append(harness.emit(a, cell(a, ports, servers, model, clients), precision="fp32",
                                        threads=a.threads))  # fmt: skip
    finally:
        for s in servers:
            s.terminate()
            s.wait(timeout=15)
    columns = ["clients", "servers", "served_chars_per_s", "offline_chars_per_s", "served_over_offline"]
    columns += ["first_char_p50_ms", "gap_p50_ms", "gap_p99_ms", "busy_429", "errors", "server_rss_mb"]
    harness.table(records, columns)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
