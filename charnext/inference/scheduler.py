"""The scheduler of a served model: one thread advances every active stream of every request in
one batched step (charnext.inference.streams), taking new requests in between two steps and
dropping the streams of a request whose client has gone.

It knows nothing of HTTP: a request is a `Job` (its streams, and where to hand what they draw);
what it draws goes to the job's `deliver`, called from the scheduler's thread, which must not
block (the server hands it to its event loop). A slow reader therefore never stalls the others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from charnext.config import SampleConfig
from charnext.errors import CharnextError
from charnext.inference.streams import Stream, StreamBatch, StreamSpec, Token
from charnext.text.vocab import Vocab


class Busy(CharnextError):
    """The model draws as many streams as it may at once: try again in a moment."""


@dataclass
class Job:
    """One request's streams, and where what they draw goes."""

    specs: list[StreamSpec]  # one per stream: prompt, length, sampling, PCG32 stream, stops
    deliver: Callable[[int, list[Token], str | None], None]  # (stream's number, new tokens, finish)
    echo: bool = False  # score the prompts' own characters too
    streams: list[Stream] = field(default_factory=list)  # as they were added
    sent: list[int] = field(default_factory=list)  # tokens handed on, per stream
    cancelled: bool = False  # the client is gone: drop its streams at the next step
    error: Exception | None = None  # why the job could not start (e.g. unknown characters)

    def cancel(self) -> None:
        """Drop this job's streams at the next step (thread-safe: a flag)."""
        self.cancelled = True


class Scheduler:
    """A served model's batch of streams, advanced by one thread; see the module's docstring."""

    def __init__(self, batch: StreamBatch, max_streams: int = 64):
        self.batch = batch
        self.max_streams = max_streams  # streams drawn at once; a job past it is refused (Busy)
        self.jobs: list[Job] = []  # admitted and running
        self.waiting: list[Job] = []  # submitted, joining at the next step
        self.closing = False  # ending: every stream ends at the next step
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="charnext-scheduler", daemon=True)
        self._stopped = False

    def start(self) -> Scheduler:
        self._thread.start()
        return self

    @property
    def active(self) -> int:
        """Streams being drawn or about to be."""
        with self._wake:
            return sum(len(j.specs) for j in self.jobs + self.waiting if not j.cancelled)

    def submit(self, job: Job) -> Job:
        """Queue a job: its streams join between two steps. Busy if they would pass the limit."""
        with self._wake:
            running = sum(len(j.specs) for j in self.jobs + self.waiting if not j.cancelled)
            if self.closing:
                raise Busy("the server is shutting down")
            if running + len(job.specs) > self.max_streams:
                raise Busy(f"{running} streams are being drawn (at most {self.max_streams} at once)")
            self.waiting.append(job)
            self._wake.notify()
        return job

    def close(self) -> None:
        """End every stream at the next step (finish reason "length"), and take no new job."""
        with self._wake:
            self.closing = True
            self._wake.notify()

    def stop(self) -> None:
        """Stop the thread (after `close`, once the streams have ended)."""
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join(timeout=5)

    # -- the thread -----------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and not self.waiting and not self.jobs:
                    self._wake.wait()
                if self._stopped:
                    return
                waiting, self.waiting = self.waiting, []
            for job in waiting:
                self._admit(job)
            self._drop_cancelled()
            if self.closing:
                self._end_all()
            touched = self.batch.step()
            self._hand_on(touched)
            with self._wake:
                self.jobs = [j for j in self.jobs if not all(s.done for s in j.streams)]

    def _admit(self, job: Job) -> None:
        """Read the job's prompts and join its streams (an error ends the job, handed on)."""
        try:
            for spec in job.specs:
                job.streams.append(self.batch.add(spec, key=job, echo=job.echo))
                job.sent.append(0)
        except Exception as e:  # noqa: BLE001 - handed to the request, which answers with it
            for stream in job.streams:
                self.batch.drop(stream)
            job.error = e
            job.deliver(-1, [], None)
            return
        with self._wake:
            self.jobs.append(job)
        self._hand_on([s for s in job.streams if s.done])  # asked for no characters

    def _drop_cancelled(self) -> None:
        for job in [j for j in self.jobs if j.cancelled]:
            for stream in job.streams:
                self.batch.drop(stream)
                stream.finish_reason = stream.finish_reason or "cancelled"
        with self._wake:
            self.jobs = [j for j in self.jobs if not j.cancelled]

    def _end_all(self) -> None:
        for stream in list(self.batch.streams):
            self.batch.drop(stream)
            stream.tokens += stream._held
            stream._held.clear()
            stream.finish_reason = "length"
            self._hand_on([stream])

    def _hand_on(self, touched: list[Stream]) -> None:
        """Hand each stream's new characters, and its end, to its job (copies: the thread goes on)."""
        for stream in touched:
            job: Job = stream.key
            i = job.streams.index(stream)
            new = stream.tokens[job.sent[i] :]
            job.sent[i] = len(stream.tokens)
            job.deliver(i, new, stream.finish_reason)


@dataclass
class ServedModel:
    """A model as a server offers it: its id, its vocabulary (to check a prompt before it
    queues), and the scheduler that draws its streams."""

    id: str  # the model's id in requests (a file's stem, or the name given)
    vocab: Vocab
    line_mode: bool  # a line model completes one line: its streams end at the line's end
    created: int  # when the checkpoint was written (seconds since 1970), for /v1/models
    scheduler: Scheduler

    def known(self, prompt: str, skip_unknown: bool = False) -> str:
        """The prompt as the model reads it: an UnknownCharactersError names characters it does
        not know, unless they are skipped."""
        return self.vocab.known(prompt, skip_unknown)[0]

    def job(
        self,
        prompts: list[str],
        draws: int,
        length: int,
        sample: SampleConfig,
        stop: tuple[str, ...],
        logprobs: int,
        echo: bool,
        deliver: Callable[[int, list[Token], str | None], None],
    ) -> Job:
        """A job of `draws` streams for each prompt, stream j of a prompt drawing from PCG32
        stream j of the sample's seed (as `predict --num-samples` does)."""
        specs = [StreamSpec(p, length, sample, j, stop, logprobs) for p in prompts for j in range(draws)]
        return Job(specs, deliver, echo)


def served(name: str, ckpt, max_streams: int = 64) -> ServedModel:
    """A loaded checkpoint (charnext.storage's) as a server offers it, its scheduler started."""
    created = int(ckpt.path.stat().st_mtime) if ckpt.path is not None else 0
    batch = StreamBatch(ckpt.runner, ckpt.vocab, ckpt.start)
    return ServedModel(name, ckpt.vocab, ckpt.line_mode, created, Scheduler(batch, max_streams).start())
