"""The server's ASGI app (Starlette): OpenAI's `/v1/completions` (plain and streamed as
server-sent events), `/v1/models` and `/health`, over each model's scheduler, which draws every
request's streams together (charnext.inference.scheduler).

The app reaches the models only through what `charnext.api.serve_app` hands it (each a
`ServedModel`: its id, vocabulary and scheduler). Every error is answered in OpenAI's shape, and
no traceback reaches a client or the log.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from charnext.errors import CharnextError, UnknownCharactersError
from charnext.serve.protocol import ApiError, Ask, Limits, chunk, completion, logprobs_object, read_ask

POLL = 0.25  # seconds between checks that a client waiting for a whole answer is still there
GROUP = 16  # characters an event carries at most: a reader behind the scheduler gets them grouped


def build_app(models: dict, api_key: str | None = None, max_tokens: int = Limits.max_tokens,
              log: Callable[[str], None] | None = None) -> ServedApp:  # fmt: skip
    """The app serving `models` (id -> ServedModel). With `api_key`, /v1/ asks for
    `Authorization: Bearer KEY` (compared in constant time). `log` receives one access line a
    request (method, path, status, characters, milliseconds)."""
    limits = Limits(max_tokens=max_tokens, max_total=max(Limits.max_total, max_tokens))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "models": sorted(models)})

    async def list_models(request: Request) -> Response:
        data = [{"id": m.id, "object": "model", "created": m.created, "owned_by": "charnext"}
                for m in models.values()]  # fmt: skip
        return JSONResponse({"object": "list", "data": data})

    async def chat(request: Request) -> Response:
        raise ApiError(404, "this is a completion model, not a chat model: use /v1/completions",
                       "model", "unsupported_endpoint")  # fmt: skip

    async def completions(request: Request) -> Response:
        if any(m.scheduler.closing for m in models.values()):
            raise ApiError(503, "the server is shutting down", code="shutting_down", kind="server_error")
        ask = read_ask(await _json_body(request, limits.max_body), limits)
        model = models.get(ask.model)
        if model is None:
            raise ApiError(404, f"the model {ask.model!r} is not served here (GET /v1/models lists those "
                           "that are)", "model", "model_not_found")  # fmt: skip
        try:
            ask.prompts = [model.known(p, ask.skip_unknown) for p in ask.prompts]
        except UnknownCharactersError as e:
            raise ApiError(400, f"{e} (or set skip_unknown)", "prompt", "unknown_characters") from None
        return await _complete(request, ask, model)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
    ]
    handlers = {ApiError: _api_error, 404: _not_found, 405: _not_allowed, Exception: _internal}
    app = Starlette(routes=routes, exception_handlers=handlers)
    return ServedApp(_AccessLog(_Auth(app, api_key), log), models)


class ServedApp:
    """The ASGI app, and its models' schedulers: `close()` ends every stream in flight (their
    answers end cleanly) and takes no new request; `stop()` then stops the schedulers."""

    def __init__(self, app, models: dict):
        self.app, self.models = app, models

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)

    def close(self) -> None:
        for model in self.models.values():
            model.scheduler.close()

    def stop(self) -> None:
        for model in self.models.values():
            model.scheduler.stop()

    def run(
        self, host: str = "127.0.0.1", port: int = 8000, on_start: Callable[[], None] | None = None
    ) -> None:
        """Serve on uvicorn until SIGINT or SIGTERM (charnext.serve.server)."""
        from charnext.serve.server import run

        run(self, host, port, on_start)


async def _json_body(request: Request, limit: int) -> object:
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > limit:
        raise ApiError(413, f"the request body is over {limit:,} bytes", code="body_too_large")
    body = bytearray()
    try:
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise ApiError(413, f"the request body is over {limit:,} bytes", code="body_too_large")
    except ClientDisconnect:
        raise ApiError(400, "the client went away before its request was read") from None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the request body is not valid JSON: {e}", code="invalid_json") from None


async def _complete(request: Request, ask: Ask, model) -> Response:
    """Queue the request's streams on the model's scheduler; answer as they are drawn."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def deliver(items) -> None:  # the scheduler's thread: hand over, never wait
        loop.call_soon_threadsafe(queue.put_nowait, items)

    r = ask.request
    job = model.job(ask.prompts, ask.draws, r.length, r.sample, r.stop, ask.logprobs or 0, ask.echo, deliver)
    try:
        model.scheduler.submit(job)
    except CharnextError as e:  # Busy: every slot is taken
        raise ApiError(429, f"{e}; retry shortly", code="rate_limit_exceeded", kind="rate_limit_error",
                       headers={"Retry-After": "1"}) from None  # fmt: skip
    request.scope.setdefault("state", {})["chars"] = 0
    if ask.stream:
        return StreamingResponse(_events(request, ask, job, queue), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})  # fmt: skip
    drawn = None
    try:
        drawn = await _gather(request, job, queue)
    finally:
        if drawn is None:  # failed, or the client went away: its streams leave at the next step
            job.cancel()
    return JSONResponse(_whole(request, ask, job, drawn))


async def _next(queue: asyncio.Queue, job) -> list[tuple]:
    """What the scheduler has drawn for the job since the last call (at least one step's): a
    reader that falls behind gets its characters in larger groups, never later."""
    items = list(await queue.get())
    while not queue.empty():
        items += queue.get_nowait()
    if any(i < 0 for i, _, _ in items):  # the job could not start
        raise ApiError(400, str(job.error), "prompt") if isinstance(job.error, CharnextError) else job.error
    merged: dict[int, tuple] = {}
    for i, tokens, finish in items:
        before = merged.get(i, (i, [], None))
        merged[i] = (i, before[1] + tokens, finish)
    return list(merged.values())


async def _gather(request: Request, job, queue: asyncio.Queue) -> list[list]:
    """Every stream's tokens to its end, watching that the client is still there."""
    drawn: list[list] = [[] for _ in job.specs]
    left = len(job.specs)
    while left:
        try:
            items = await asyncio.wait_for(_next(queue, job), POLL)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                job.cancel()
                raise ApiError(499, "the client went away") from None
            continue
        for i, tokens, finish in items:
            drawn[i] += tokens
            left -= finish is not None
    return drawn


def _whole(request: Request, ask: Ask, job, drawn: list[list]) -> dict:
    """The answer to a request that does not stream: n choices per prompt (the most likely of
    best_of, by mean log-probability)."""
    r, choices, total = ask.request, [], 0
    for p, prompt in enumerate(ask.prompts):
        mine = list(range(p * ask.draws, (p + 1) * ask.draws))
        if r.best_of:
            mine.sort(key=lambda i: -job.streams[i].mean_logprob)  # ended: as predict --best-of ranks
        for j, i in enumerate(mine[: r.num_samples]):
            tokens = _echoed(job, i, prompt, ask) + drawn[i]
            text = "".join(t[0] if isinstance(t, tuple) else t.char for t in tokens)
            lp = logprobs_object(tokens, 0, ask.logprobs) if ask.logprobs is not None else None
            reason = job.streams[i].finish_reason
            choices.append(
                {"text": text, "index": p * r.num_samples + j, "logprobs": lp, "finish_reason": reason}
            )
        total += sum(len(drawn[i]) for i in mine)
    request.scope["state"]["chars"] = total
    return completion(ask, choices, sum(map(len, ask.prompts)), total)


def _echoed(job, i: int, prompt: str, ask: Ask) -> list:
    """The prompt's own characters, for `echo` (each with its log-probability where it has one)."""
    if not ask.echo:
        return []
    scored = job.streams[i].prompt_logprobs  # scored when the job joined, before anything was drawn
    return [tok if tok is not None else (c, None) for c, tok in zip(prompt, scored)]


def _event(request: Request, ask: Ask, i: int, tokens: list, finish: str | None, offsets: dict) -> str:
    """One server-sent event: choice i's next characters (and its end)."""
    text = "".join(t[0] if isinstance(t, tuple) else t.char for t in tokens)
    offset = offsets.get(i, 0)
    offsets[i] = offset + len(text)  # where the next event's characters stand in the choice
    lp = logprobs_object(tokens, offset, ask.logprobs) if ask.logprobs is not None else None
    request.scope["state"]["chars"] += sum(not isinstance(t, tuple) for t in tokens)
    return f"data: {json.dumps(chunk(ask, i, text, lp, finish), ensure_ascii=False)}\n\n"


async def _events(request: Request, ask: Ask, job, queue: asyncio.Queue):
    """The server-sent events of a streamed answer: an event per character drawn, or per group
    of up to GROUP where the reader is behind; each choice's end; then `data: [DONE]`."""
    left, offsets = len(job.specs), {}
    try:
        while left:
            events = []
            for i, tokens, finish in await _next(queue, job):
                if i not in offsets and ask.echo:
                    tokens = _echoed(job, i, ask.prompts[i // ask.draws], ask) + tokens
                groups = [tokens[k : k + GROUP] for k in range(0, len(tokens), GROUP)] or [[]]
                for k, group in enumerate(groups):
                    end = finish if k == len(groups) - 1 else None
                    events.append(_event(request, ask, i, group, end, offsets))
                left -= finish is not None
            yield "".join(events)
        yield "data: [DONE]\n\n"
    except ApiError as e:  # the job failed after the answer began: say so, and end
        yield f"data: {json.dumps(e.body())}\n\n"
    finally:
        if left:  # the client went away (or the job failed): its streams leave at the next step
            job.cancel()


# -- errors -------------------------------------------------------------------------------------


def _error(e: ApiError) -> Response:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


async def _api_error(request: Request, e: Exception) -> Response:
    return _error(e)  # type: ignore[arg-type]


async def _not_found(request: Request, e: Exception) -> Response:
    return _error(ApiError(404, f"no such endpoint: {request.url.path}", code="not_found"))


async def _not_allowed(request: Request, e: Exception) -> Response:
    return _error(
        ApiError(405, f"{request.method} is not allowed on {request.url.path}", code="method_not_allowed")
    )


async def _internal(request: Request, e: Exception) -> Response:
    request.scope.setdefault("state", {})["error"] = f"{type(e).__name__}: {e}"
    return _error(ApiError(500, "the server failed to answer this request", kind="server_error"))


# -- middleware (plain ASGI: they see every request, errors included) ---------------------------


class _Auth:
    """With a key, /v1/ answers 401 unless `Authorization: Bearer KEY` (constant-time compare)."""

    def __init__(self, app, key: str | None):
        self.app, self.key = app, key.encode() if key else None

    async def __call__(self, scope, receive, send):
        if self.key is not None and scope["type"] == "http" and scope["path"].startswith("/v1/"):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, b"Bearer " + self.key):
                message = "a valid API key is needed: Authorization: Bearer KEY"
                error = ApiError(401, message, code="invalid_api_key", kind="authentication_error")
                await _error(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _AccessLog:
    """One line a request: method, path, status, characters drawn, milliseconds."""

    def __init__(self, app, log: Callable[[str], None] | None):
        self.app, self.log = app, log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.log is None:
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [0]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as e:  # noqa: BLE001 - answered (500) already; one line, no traceback
            scope.setdefault("state", {}).setdefault("error", f"{type(e).__name__}: {e}")
        finally:
            state = scope.get("state", {})
            ms = (time.perf_counter() - start) * 1000
            chars = state.get("chars", 0)
            line = f"{scope['method']} {scope['path']} {status[0] or 499} {chars} chars {ms:.0f} ms"
            self.log(line + (f" ({state['error']})" if state.get("error") else ""))
