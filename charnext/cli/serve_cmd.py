"""`charnext serve`: the models as a local service speaking OpenAI's completions API."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from charnext.cli import options
from charnext.cli.common import handle_errors, usage
from charnext.errors import MissingDependencyError

LOOPBACK = ("localhost",)


@handle_errors
def serve(
    checkpoint: options.ServeCheckpoints = None,
    name: options.ModelNames = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; any but loopback asks for an API key.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    api_key: options.ApiKey = None,
    max_streams: Annotated[int, typer.Option(help="Streams a model draws at once; past it, 429.")] = 64,
    max_tokens: Annotated[int, typer.Option(help="Characters one choice may ask for.")] = 4096,
    threads: Annotated[
        int, typer.Option(help="Threads a model's batch of streams is split across (BLAS on one each).")
    ] = 1,
) -> None:
    """Serve models over HTTP with OpenAI's completions API (/v1/completions, /v1/models).

    Concurrent requests are drawn together, one batched step for every stream; any OpenAI client
    works with base_url http://HOST:PORT/v1. Runs on numpy (no torch). Needs the serve extra:
    pip install 'charnext[serve]'. Ctrl-C or SIGTERM ends the streams in flight and exits 0.
    """
    key = api_key or os.environ.get("CHARNEXT_API_KEY") or None
    if port < 0 or port > 65535:
        raise usage(f"--port must be from 0 to 65535, not {port}")
    for flag, value in (("--max-streams", max_streams), ("--max-tokens", max_tokens), ("--threads", threads)):
        if value < 1:
            raise usage(f"{flag} must be at least 1, not {value}")
    if not _loopback(host) and key is None:
        raise usage(f"--host {host} is reachable from other machines: give --api-key (or CHARNEXT_API_KEY)")
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "charnext serve needs the serve extra: pip install 'charnext[serve]'"
        ) from None
    from charnext import api

    paths = checkpoint or [Path("checkpoint.pt")]
    options = dict(api_key=key, max_streams=max_streams, max_tokens=max_tokens, threads=threads, log=_log)
    app = api.serve_app(paths, name, **options)
    app.run(host, port, on_start=lambda: _log(f"serving {', '.join(app.models)} at http://{host}:{port}/v1"
                                              " (Ctrl-C to stop)"))  # fmt: skip
    _log("stopped")


def _loopback(host: str) -> bool:
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _log(line: str) -> None:
    """One plain line on stderr (the access log, the start and the end), at once."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass
