"""Running the app on uvicorn (`charnext serve`): on SIGINT or SIGTERM the streams in flight end
at once (their answers close cleanly, `finish_reason` "length"), the server stops accepting, waits
a short grace period for the answers to go out, and the process exits 0."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable

from charnext.errors import UsageError

GRACE = 5  # seconds the answers in flight have to go out on shutdown


def port_free(host: str, port: int) -> bool:
    """Whether `port` can be bound on `host` (checked before starting, for a one-line error)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def run(app, host: str, port: int, on_start: Callable[[], None] | None = None) -> None:
    """Serve `app` (a ServedApp) until a signal, then shut down as the module says; `on_start`
    is called once it listens."""
    import uvicorn

    if not port_free(host, port):
        raise UsageError(f"port {port} (--port) is in use on {host}: give another")

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if on_start is not None and self.started:
                on_start()

        def handle_exit(self, sig, frame) -> None:  # uvicorn's, less the signal raised again
            app.close()
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off", server_header=False, timeout_graceful_shutdown=GRACE)  # fmt: skip
    Server(config).run()
    app.stop()
