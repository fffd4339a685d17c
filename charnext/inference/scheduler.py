"""The scheduler of a served model: one thread advances every active stream of every request in
one batched step (charnext.inference.streams), taking new requests in between two steps and
dropping the streams of a request whose client has gone.

It knows nothing of HTTP: a request is a `Job` (its streams, and where to hand what they draw);
what it draws goes to the job's `deliver`, called from the scheduler's thread, which must not
block (the server hands it to its event loop). A slow reader therefore never stalls the others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from charnext.config import SampleConfig
from charnext.errors import CharnextError
from charnext.inference.streams import Stream, StreamBatch, StreamSpec, Token
from charnext.text.vocab import Vocab

Delivery = tuple[int, list[Token], str | None]  # a stream's number in its job, new tokens, its end


HAND_ON = 0.01  # seconds a job's characters may gather before they are handed on (its first: at once)


class Busy(CharnextError):
    """The model draws as many streams as it may at once: try again in a moment."""


@dataclass
class Job:
    """One request's streams, and where what they draw goes."""

    specs: list[StreamSpec]  # one per stream: prompt, length, sampling, PCG32 stream, stops
    deliver: Callable[[list[Delivery]], None]  # what a step drew for the job: one call a step
    echo: bool = False  # score the prompts' own characters too
    streams: list[Stream] = field(default_factory=list)  # as they were added
    sent: list[int] = field(default_factory=list)  # tokens handed on, per stream
    cancelled: bool = False  # the client is gone: drop its streams at the next step
    pending: list = field(default_factory=list)  # drawn, not yet handed on (Delivery items)
    handed: float | None = None  # when the job was last handed something (time.monotonic)
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
            return self._running()

    def _running(self) -> int:  # the lock held
        return sum(len(j.specs) for j in self.jobs + self.waiting if not j.cancelled)

    def submit(self, job: Job) -> Job:
        """Queue a job: its streams join between two steps. Busy if they would pass the limit."""
        with self._wake:
            running = self._running()
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
            self._admit(waiting)
            self._drop_cancelled()
            if self.closing:
                self._end_all()
            try:
                touched = self.batch.step()
            except Exception as e:  # noqa: BLE001 - no request may wait forever on a broken step
                self._fail_all(e)
                continue
            self._hand_on(touched)
            self._flush_all()
            with self._wake:
                self.jobs = [j for j in self.jobs if not all(s.done for s in j.streams)]

    def _admit(self, jobs: list[Job]) -> None:
        """Read the new jobs' prompts (each distinct one once) and join their streams; a job
        whose prompt cannot be read ends with its error, handed on."""
        try:
            specs, owners = [s for j in jobs for s in j.specs], [j for j in jobs for _ in j.specs]
            added = self.batch.add_many(specs, owners, echo=any(j.echo for j in jobs))
        except Exception:  # noqa: BLE001 - one job's prompt failed: take them one by one
            for job in jobs:
                self._admit_one(job)
            return
        for job in jobs:
            job.streams = [s for s in added if s.key is job]
            job.sent = [0] * len(job.streams)
        with self._wake:
            self.jobs += jobs
        self._hand_on([s for s in added if s.done])  # asked for no characters

    def _admit_one(self, job: Job) -> None:
        try:
            job.streams = self.batch.add_many(job.specs, [job] * len(job.specs), job.echo)
            job.sent = [0] * len(job.streams)
        except Exception as e:  # noqa: BLE001 - handed to the request, which answers with it
            for stream in job.streams:
                self.batch.drop(stream)
            job.streams, job.error = [], e
            job.deliver([(-1, [], None)])
            return
        with self._wake:
            self.jobs.append(job)
        self._hand_on([s for s in job.streams if s.done])

    def _fail_all(self, error: Exception) -> None:
        """End every job with `error` (each request answers with it) and empty the batch."""
        for stream in list(self.batch.streams):
            self.batch.drop(stream)
        with self._wake:
            jobs, self.jobs = self.jobs, []
        for job in jobs:
            job.error = error
            job.deliver([(-1, [], None)])

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
            stream.finish("length")
            self._hand_on([stream])

    def _hand_on(self, touched: list[Stream]) -> None:
        """Hand each job what its streams drew (copies: the thread goes on): at once for a job's
        first characters and its ends, otherwise gathered over HAND_ON seconds, so that a
        request costs its server a call every few characters, not every one."""
        now = time.monotonic()
        for stream in touched:
            job: Job = stream.key
            i = job.streams.index(stream)
            job.pending.append((i, stream.tokens[job.sent[i] :], stream.finish_reason))
            job.sent[i] = len(stream.tokens)
        for job in {id(s.key): s.key for s in touched}.values():
            if job.handed is None or now - job.handed >= HAND_ON or any(f for _, _, f in job.pending):
                self._flush(job, now)

    def _flush(self, job: Job, now: float) -> None:
        if job.pending:
            job.deliver(job.pending)
            job.pending, job.handed = [], now

    def _flush_all(self) -> None:
        """What is gathered and has waited HAND_ON: handed on (between steps)."""
        now = time.monotonic()
        for job in self.jobs:
            if job.pending and now - (job.handed or 0) >= HAND_ON:
                self._flush(job, now)


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
        deliver: Callable[[list[Delivery]], None],
    ) -> Job:
        """A job of `draws` streams for each prompt, stream j of a prompt drawing from PCG32
        stream j of the sample's seed (as `predict --num-samples` does)."""
        specs = [StreamSpec(p, length, sample, j, stop, logprobs) for p in prompts for j in range(draws)]
        return Job(specs, deliver, echo)


def served(name: str, ckpt, max_streams: int = 64) -> ServedModel:
    """A loaded checkpoint (charnext.storage's) as a server offers it, its scheduler started."""
    created = int(ckpt.path.stat().st_mtime) if ckpt.path is not None else 0
    batch = StreamBatch(ckpt)
    return ServedModel(name, ckpt.vocab, ckpt.line_mode, created, Scheduler(batch, max_streams).start())
