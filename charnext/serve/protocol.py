"""OpenAI's completions API, as charnext speaks it: a request's JSON read into charnext's own
checked request (`PredictRequest`, `SampleConfig`), its errors in OpenAI's shape, and the
response objects. Characters are the tokens: `max_tokens` counts characters, `usage` too."""

from __future__ import annotations

import dataclasses
import math
import secrets
import time
from dataclasses import dataclass, field

from charnext.config import SampleConfig
from charnext.errors import InvalidValue
from charnext.results import PredictRequest

# charnext's name for a value -> the API's (an InvalidValue's param becomes the error's `param`)
OPENAI_NAMES = {"prefix": "prompt", "length": "max_tokens", "num_samples": "n", "alternatives": "logprobs"}
MAX_LOGPROBS = 5  # alternatives a character may come with (as OpenAI's API allows)
MAX_PROMPTS = 16  # prompts in one request


class ApiError(Exception):
    """An error answered in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error", headers: dict | None = None):  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.kind, self.headers = kind, headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Limits:
    """What one request may ask for, and the server take."""

    max_tokens: int = 4096  # characters one choice may draw
    max_total: int = 16_384  # characters one request may draw, all choices together
    max_body: int = 1 << 20  # bytes of a request's body


@dataclass
class Ask:
    """A completions request, read and checked."""

    model: str
    prompts: list[str]
    request: PredictRequest  # length, samples, sampling, stops, best_of: checked by charnext
    stream: bool = False
    logprobs: int | None = None  # alternatives per character; None: no logprobs
    echo: bool = False
    skip_unknown: bool = False  # charnext's extension: drop unknown prompt characters instead of 400
    id: str = field(default_factory=lambda: "cmpl-" + secrets.token_hex(12))
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def draws(self) -> int:
        """Streams drawn for each prompt."""
        return self.request.best_of or self.request.num_samples


def _typed(body: dict, name: str, kinds: tuple, default, what: str):
    value = body.get(name, default)
    if value is None and None in kinds:
        return None
    ok = isinstance(value, tuple(k for k in kinds if k is not None)) and not (
        isinstance(value, bool) and bool not in kinds
    )
    if not ok or (isinstance(value, float) and not math.isfinite(value)):
        raise ApiError(400, f"{name} must be {what}, not {value!r}", name, "invalid_type")
    return value


def read_ask(body: object, limits: Limits) -> Ask:
    """The request's JSON as an `Ask`, or an ApiError naming the field at fault."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = _typed(body, "model", (str,), None, "a model's id (GET /v1/models lists them)")
    prompt = body.get("prompt", "")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ApiError(400, "prompt must be a text or a list of texts (token ids are not taken)", "prompt")
    if len(prompts) > MAX_PROMPTS:
        raise ApiError(400, f"prompt takes at most {MAX_PROMPTS} texts, not {len(prompts)}", "prompt")
    if body.get("suffix"):
        raise ApiError(400, "suffix is not supported: a character model continues a prompt", "suffix")
    stop = body.get("stop")
    stops = () if stop is None else (stop,) if isinstance(stop, str) else stop
    if not isinstance(stops, list | tuple):
        raise ApiError(400, f"stop must be a text or a list of texts, not {stop!r}", "stop", "invalid_type")
    logprobs = _typed(body, "logprobs", (int, None), None, f"a whole number from 0 to {MAX_LOGPROBS}")
    if logprobs is not None and not 0 <= logprobs <= MAX_LOGPROBS:
        raise ApiError(400, f"logprobs must be from 0 to {MAX_LOGPROBS}, not {logprobs}", "logprobs")
    number = (int, float)
    try:
        sample = SampleConfig(
            temperature=_typed(body, "temperature", number, 1.0, "a number"),
            top_k=_typed(body, "top_k", (int,), 0, "a whole number"),
            top_p=_typed(body, "top_p", number, 1.0, "a number"),
            seed=_typed(body, "seed", (int, None), None, "a whole number"),
        )
        if sample.seed is None:  # every choice of the request draws from one seed's streams
            sample = dataclasses.replace(sample, seed=secrets.randbits(63))
        request = PredictRequest(
            prefix=prompts[0],  # its characters are checked against the model's vocabulary later
            length=_typed(body, "max_tokens", (int,), 16, "a whole number"),
            sample=sample,
            num_samples=_typed(body, "n", (int,), 1, "a whole number"),
            stop=tuple(stops),
            best_of=_typed(body, "best_of", (int, None), None, "a whole number"),
        )
    except InvalidValue as e:
        name = OPENAI_NAMES.get(e.param, e.param)
        raise ApiError(400, e.naming(lambda p: OPENAI_NAMES.get(p, p)), name) from None
    ask = Ask(model, prompts, request, stream=_typed(body, "stream", (bool,), False, "true or false"),
              logprobs=logprobs, echo=_typed(body, "echo", (bool,), False, "true or false"),
              skip_unknown=_typed(body, "skip_unknown", (bool,), False, "true or false"))  # fmt: skip
    _check_limits(ask, limits)
    return ask


def _check_limits(ask: Ask, limits: Limits) -> None:
    r = ask.request
    if r.length > limits.max_tokens:
        raise ApiError(400, f"max_tokens is at most {limits.max_tokens} here, not {r.length}", "max_tokens")
    total = r.length * ask.draws * len(ask.prompts)
    if total > limits.max_total:
        raise ApiError(400, f"max_tokens x {'best_of' if r.best_of else 'n'} x prompts is at most "
                       f"{limits.max_total} here, not {total}", "max_tokens")  # fmt: skip
    if ask.stream and r.best_of and r.best_of > r.num_samples:
        raise ApiError(
            400, "best_of cannot be used with stream: the best is known only at the end", "best_of"
        )


# -- what is answered --------------------------------------------------------------------------


def logprobs_object(tokens: list, offset: int, alternatives: int) -> dict:
    """OpenAI's logprobs of a choice: each character, its log-probability, the most likely
    alternatives, and where it stands in the choice's text (a prompt's first character: null)."""
    out: dict = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for token in tokens:
        out["tokens"].append(token[0] if isinstance(token, tuple) else token.char)
        if isinstance(token, tuple):  # (char, None): nothing came before it
            out["token_logprobs"].append(None)
            out["top_logprobs"].append(None)
        else:
            out["token_logprobs"].append(token.logprob)
            out["top_logprobs"].append(dict(token.top[:alternatives]) if alternatives else {})
        out["text_offset"].append(offset)
        offset += 1
    return out


def completion(ask: Ask, choices: list[dict], prompt_chars: int, drawn_chars: int) -> dict:
    """The whole answer of a request that does not stream."""
    return {
        "id": ask.id,
        "object": "text_completion",
        "created": ask.created,
        "model": ask.model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_chars,
            "completion_tokens": drawn_chars,
            "total_tokens": prompt_chars + drawn_chars,
        },  # fmt: skip
    }


def chunk(ask: Ask, index: int, text: str, logprobs: dict | None, finish: str | None) -> dict:
    """One server-sent event of a streamed answer."""
    choice = {"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish}
    return {"id": ask.id, "object": "text_completion", "created": ask.created, "model": ask.model,
            "choices": [choice]}  # fmt: skip
