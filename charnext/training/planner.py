"""The plan of a run: the model, regularisation and optimisation a budget can buy on a text.

What the user leaves out of `charnext train`, the planner chooses from four facts: how many
characters the text has, how long the run may take (`--max-time`, `--steps`, `--epochs`, or
the default), the cell, and how fast this machine trains (measured at start: a few candidate
shapes timed, at most PROBE_TOTAL_SHARE of the budget). The rule, in order:

1. **Speeds**: the reference model (2x256) at the default batch, at 4x the batch, and twice as
   wide, as the budget allows; other shapes are scaled from these (time per character grows
   with the parameters plus a fixed cost; the batch's gain is interpolated in log(batch)).
2. **Width and batch**: among the widths of `LADDER` and the batches 1x, 2x, 4x the default,
   the pair whose predicted validation loss (`predicted_loss(N, D)`, fitted to step-budget runs,
   which do not depend on the CPU) is lowest for the characters `D` it would see here, with at
   least `CHARS_PER_PARAM` characters per parameter, at most `PARAMS_PER_CHAR` parameters per
   character of text, and (for a grown batch) `MIN_PLANNED_STEPS` steps.
3. **Dropout**: none while the run makes few passes over the text; more as passes add up,
   since a model that sees the same text many times starts to memorise it. None at all when
   nothing is held out (a short text, learnt by heart as the lecture does).
4. **Learning rate**: falls as the model widens (`LR_256 * sqrt(256 / hidden)`) and grows with
   the square root of the batch.

Every option the user gives wins over the plan. The chosen values and the reason are
recorded in the checkpoint's provenance, so `inspect` can show them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from charnext.config import PLANNED, Cell, ModelConfig, TrainConfig, format_budget

# Hidden sizes the planner chooses among (two layers each; the smallest texts get one).
LADDER = (32, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
# A run should train on at least this many characters per parameter: the loss rule above is
# additive and cannot see that a wide model needs more characters before it pays. On an Intel
# Xeon (bf16, 90 s of tinyshakespeare) 2x384 at 1.6 and 1.9 characters per parameter (batch 16
# and 64) lost to 2x256 at 5.3 (1.4543 and 1.4426 against 1.4323), though by no more than two
# runs of the same command differ (0.022); on this machine 2x384 at 0.6 lost to 2x256 at 2.7.
CHARS_PER_PARAM = 2.5
# At most this many parameters per character of training text: beyond it a model only
# memorises, whatever the budget. On 18 KB of verse in 90 s (hundreds of passes, dropout 0.35)
# 2x128 (13.5 parameters per character) reached 1.81 nats/char where 1x32 (1.1) reached 2.00.
PARAMS_PER_CHAR = 16.0
LR_256 = 8e-3  # peak learning rate of a 256-unit model at batch 16; others scale by sqrt(256 / hidden)
# The learning rate grows with the square root of the batch (Adam's noise scale): on an Intel
# Xeon (bf16, 90 s of tinyshakespeare) 2x384 at batch 64 reached 1.4756 at the batch-16 rate
# (0.0065) and 1.4426 at twice it (0.013), better than batch 16's 1.4543.
LR_BATCH = 16
MAX_LR = 0.06  # cap for very small models (the lecture's 5 units)
# Dropout as passes over the text add up: 0 up to DROPOUT_FREE_PASSES, then DROPOUT_PER_DOUBLING
# more for each doubling of the passes, at most MAX_DROPOUT.
# It moves in steps of DROPOUT_STEP: a token dropout costs training speed (in a 90-second run
# on tinyshakespeare, dropout 0.02 cost 10% of the chars/s) and buys nothing.
DROPOUT_FREE_PASSES = 3.0
DROPOUT_PER_DOUBLING = 0.1
DROPOUT_STEP = 0.05
MAX_DROPOUT = 0.35
# AdamW weight decay wherever dropout is planned: on a 180 KB text (20 passes in 90 s) it took
# the best validation loss from 1.562 to 1.542.
WEIGHT_DECAY = 0.1
# Under a time or epoch budget the batch may grow from the default (16 windows, 64 lines) to
# 2x or 4x it, with the learning rate scaled (lr_for), where what it buys is worth more (below),
# while the run still makes MIN_PLANNED_STEPS steps. A step budget keeps the default batch, so
# that a step costs what the user expects. On an Intel Xeon (bf16, 90 s of tinyshakespeare)
# batch 64 at the scaled rate (875 steps) beat batch 16 (2,967 steps).
BATCH_FACTORS = (1, 2, 4)
MIN_PLANNED_STEPS = 800
TIME_FOR_TRAINING = 0.92  # share of a time budget spent in optimizer steps (validation, saving)
# What a run buys: the validation loss of a model of N parameters that trains on D characters,
# L = LOSS_FLOOR + LOSS_N * (N / 1e6) ** -LOSS_ALPHA + LOSS_D * (D / 1e6) ** -LOSS_BETA, fitted to
# step-budget runs on tinyshakespeare (benchmarks/planning_fit.py; the data in docs/planning.md).
# A step count does not depend on the CPU's speed, so the fit holds on any machine; the plan
# combines it with the speeds this machine measures. Only differences between candidates matter.
# Fitted (rms 0.023 nats/char, about one run's noise) to 7 fp32 runs of 2x128..2x384 at 0.5M and
# 1.5M characters and 5 earlier time-budgeted runs whose characters are known (Intel bf16 and
# this 2-core machine at 90 s).
LOSS_FLOOR = 0.645
LOSS_N = 0.765
LOSS_ALPHA = 0.1
LOSS_D = 0.206
LOSS_BETA = 1.0
# Time per character grows with parameters plus a fixed cost, as if every model had this many
# more: measured at start from two widths where the budget allows, else this (fitted to
# raw_rnn_loop on 2x128 .. 2x768 LSTMs).
FIXED_COST_PARAMS = 160_000
SPEED_DEPENDENT = {"hidden_size", "batch_size", "dropout", "weight_decay"}  # what needs the probe
PROBE_HIDDEN = 256  # the model timed first at the start of a time-budgeted run
# The probes: the reference model at the default batch, then (while they have taken less than
# PROBE_TOTAL_SHARE of the budget) at 4x the batch, then twice as wide. Each times
# PROBE_MIN_STEPS to PROBE_MAX_STEPS steps (timed_speed).
PROBE_TOTAL_SHARE = 0.015
# Each probe takes the lower quartile of its step times: another process that wakes up slows a
# few steps by 2-4x, which a median of three (an earlier probe) let through, so that one 90 s run
# planned 2x192 and the next 2x256 on the same machine (tests/test_planner.py injects such bursts).
PROBE_WARMUP = 2
PROBE_MIN_STEPS = 8
PROBE_MAX_STEPS = 16
PROBE_SHARE = 0.005


@dataclass
class Plan:
    """What the planner chose, and why: recorded in the checkpoint."""

    hidden_size: int  # units per layer
    num_layers: int  # recurrent layers
    dropout: float  # dropout between layers and before the head
    weight_decay: float  # AdamW weight decay
    batch_size: int  # windows (lines) per step
    lr: float  # peak learning rate
    warmup_steps: int  # steps of linear warm-up
    train_chars: int  # characters of the training text
    run_chars: float  # characters the run is expected to train on
    passes: float  # run_chars / train_chars
    chars_per_sec: float | None  # measured (time budgets) and scaled to the chosen model
    budget: str  # "10m", "3000 steps", ...
    planned: list[str] = field(default_factory=list)  # the fields the plan set (the rest were given)
    measured: list[dict] = field(default_factory=list)  # the probes: hidden, batch, chars/s
    predicted_loss: float | None = None  # the rule's validation loss for the choice (nats/char)
    why: str = ""  # the header line

    def to_dict(self) -> dict:
        """Plain values, for the checkpoint's provenance and JSON."""
        return asdict(self)

    def replan_regularisation(self, passes: float) -> set[str]:
        """Choose the planned dropout and weight decay again for a run now expected to make
        `passes` passes over its text (a time budget on a machine slower or faster than the
        probe at the start); the names of those it set (none where both were given)."""
        changed = {"dropout", "weight_decay"} & set(self.planned)
        if changed:
            self.passes = passes
        if "dropout" in changed:
            self.dropout = dropout_for(passes)
        if "weight_decay" in changed:
            self.weight_decay = weight_decay_for(passes)
        return changed


def parameters(cell: Cell, hidden: int, layers: int, vocab: int, embedding: int) -> int:
    """Trainable parameters of a CharModel of this shape (as CharModel.num_parameters)."""
    gates = {Cell.rnn: 1, Cell.gru: 3, Cell.lstm: 4}[Cell(cell)]
    inp = embedding or vocab
    # the first layer reads the input, the others the layer below; counted, not listed (a
    # mistyped --num-layers may be a billion)
    recurrent = gates * hidden * (inp + hidden + 2) + (layers - 1) * gates * hidden * (2 * hidden + 2)
    return recurrent + (vocab * embedding) + hidden * vocab + vocab


def layers_for(hidden: int) -> int:
    """Two layers, except for the smallest models."""
    return 1 if hidden < 64 else 2


def lr_for(hidden: int, batch: int = LR_BATCH) -> float:
    """The peak learning rate of a model `hidden` units wide trained at `batch` windows a step:
    scaled by sqrt(256 / hidden), and above LR_BATCH by sqrt(batch / LR_BATCH) (at most MAX_LR;
    a smaller batch, a short text's, keeps the rate: the lecture's hihello trains at batch 1)."""
    return min(MAX_LR, LR_256 * math.sqrt(256 / hidden) * math.sqrt(max(batch, LR_BATCH) / LR_BATCH))


def dropout_for(passes: float) -> float:
    """Dropout for a run that makes `passes` passes over its text."""
    if passes <= DROPOUT_FREE_PASSES:
        return 0.0
    d = DROPOUT_PER_DOUBLING * math.log2(passes / DROPOUT_FREE_PASSES)
    return round(round(min(MAX_DROPOUT, d) / DROPOUT_STEP) * DROPOUT_STEP, 2)


def weight_decay_for(passes: float) -> float:
    """AdamW weight decay for a run that makes `passes` passes: only where dropout is due."""
    return WEIGHT_DECAY if dropout_for(passes) > 0 else 0.0


def human_size(chars: float) -> str:
    """1234567 -> '1.2 MB' (characters, as bytes of ASCII text)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if chars >= size:
            return f"{chars / size:.1f} {unit}"
    return f"{int(chars)} chars"


def predicted_loss(params: int, chars: float) -> float:
    """The rule's validation loss (nats/char) of a model of `params` parameters trained on
    `chars` characters (see LOSS_FLOOR)."""
    n, d = max(params, 1) / 1e6, max(chars, 1.0) / 1e6
    return LOSS_FLOOR + LOSS_N * n**-LOSS_ALPHA + LOSS_D * d**-LOSS_BETA


class _Estimates:
    """What a run of a given shape would train on: the figures make_plan weighs, from the
    options given, the text and (under a time budget) the speeds this machine measures."""

    def __init__(self, given: dict, vocab_size: int, seq_len: int, steps_for: Callable[[int], int],
                 base_batch: int, max_batch: int | None):  # fmt: skip
        self.given, self.vocab_size, self.seq_len, self.steps_for = given, vocab_size, seq_len, steps_for
        self.base_batch, self.max_batch = base_batch, max_batch
        self.cell = Cell(given.get("cell", Cell.lstm))
        self.embedding = given.get("embedding_size", ModelConfig.embedding_size)
        self.max_time = given.get("max_time")
        self.measured: list[dict] = []  # the probes: hidden, batch, chars/s
        self.speed_ref: float | None = None  # chars/s of the reference model at the default batch
        self.ref_params = 0
        self.fixed = float(FIXED_COST_PARAMS)  # the fixed cost, in parameters
        self.batch_gain = 1.0  # chars/s at 4x the default batch over the default

    def measure(self, probe: Callable[[int, int, int], float] | None, clock=time.perf_counter) -> None:
        """Under a time budget, time the reference model, then (while the probes have taken less
        than PROBE_TOTAL_SHARE of the budget) at 4x the batch and twice as wide; unless every
        option the speed informs is given."""
        if self.max_time is None or probe is None or SPEED_DEPENDENT <= self.given.keys():
            return
        hidden = self.given.get("hidden_size", PROBE_HIDDEN)
        layers = self.given.get("num_layers", layers_for(hidden))
        start, base = clock(), self.base_batch
        self.speed_ref, self.ref_params = probe(hidden, layers, base), self.size(hidden)
        self.measured.append({"hidden": hidden, "batch": base, "chars_per_sec": self.speed_ref})
        wider = min(2 * hidden, LADDER[-1])
        for h, b in ((hidden, 4 * base), (wider, base)):
            spent = clock() - start >= PROBE_TOTAL_SHARE * self.max_time
            if (
                spent
                or (b != base and "batch_size" in self.given)
                or (h != hidden and "hidden_size" in self.given)
            ):
                continue
            rate = probe(h, self.given.get("num_layers", layers_for(h)), b)
            self.measured.append({"hidden": h, "batch": b, "chars_per_sec": rate})
            q = rate / max(self.speed_ref, 1e-9)
            if h == hidden:  # the batch's gain, within what CPUs show (raw_rnn_loop: 1.8x for 4x)
                self.batch_gain = min(3.0, max(1.0, q))
            elif q < 1.0:  # time per char ~ params + fixed: solve for the fixed cost
                p1, p2 = self.ref_params, self.size(h)
                self.fixed = min(4.0 * p1, max(0.0, (q * p2 - p1) / (1.0 - q)))

    def size(self, hidden: int) -> int:
        layers = self.given.get("num_layers", layers_for(hidden))
        return parameters(self.cell, hidden, layers, self.vocab_size, self.embedding)

    def speed(self, hidden: int, batch: int) -> float | None:
        """Chars/s of a model `hidden` wide at `batch`: the measured reference scaled by cost,
        the batch's gain interpolated in log(batch) (4x the default is the measured point)."""
        if self.speed_ref is None:
            return None
        factor = max(batch, 1) / self.base_batch
        gain = self.batch_gain ** (math.log2(factor) / 2) if factor >= 1 else factor**0.25
        return self.speed_ref * (self.ref_params + self.fixed) / (self.size(hidden) + self.fixed) * gain

    def run_chars(self, hidden: int, batch: int) -> float:
        if self.max_time is not None:
            return (self.speed(hidden, batch) or 0.0) * self.max_time * TIME_FOR_TRAINING
        return self.steps_for(batch) * batch * self.seq_len

    def batches(self) -> list[int]:
        """The batches a plan may choose: the one given, else the default (and, under a time or
        epoch budget, 2x and 4x it), never more than the text holds."""
        if "batch_size" in self.given:
            return [self.given["batch_size"]]
        grow = self.max_time is not None or self.given.get("epochs") is not None
        chosen = [self.base_batch * f for f in (BATCH_FACTORS if grow else (1,))]
        return sorted({max(1, min(b, self.max_batch or b)) for b in chosen})

    def allowed(self, hidden: int, batch: int, train_chars: int) -> bool:
        """Whether the run trains a model this wide on enough characters per parameter, the
        model is not too large for the text, and a grown batch still makes enough steps."""
        d, n = self.run_chars(hidden, batch), self.size(hidden)
        if d / n < CHARS_PER_PARAM or n > PARAMS_PER_CHAR * max(train_chars, 1):
            return False
        return batch == self.batches()[0] or d / (batch * self.seq_len) >= MIN_PLANNED_STEPS

    def best_shape(self, train_chars: int) -> tuple[int, int]:
        """The width and batch the rule expects to learn most: the lowest predicted loss among
        the ladder's widths and the batches allowed (the smallest width where none is)."""
        widths = [self.given["hidden_size"]] if "hidden_size" in self.given else list(LADDER)
        options = [(h, b) for h in widths for b in self.batches() if self.allowed(h, b, train_chars)]
        if not options:
            return widths[0], self.batches()[0]
        return min(options, key=lambda hb: predicted_loss(self.size(hb[0]), self.run_chars(*hb)))


def make_plan(
    *,
    given: dict,
    train_chars: int,
    vocab_size: int,
    seq_len: int,
    steps_for: Callable[[int], int],
    probe: Callable[[int, int, int], float] | None,
    held_out: bool = True,
    base_batch: int = 16,
    max_batch: int | None = None,
) -> Plan:
    """Choose what `given` (ModelConfig and TrainConfig fields the user set) leaves open.

    `steps_for(batch)` gives the planned steps of a run with no time budget;
    `base_batch` is the default batch and `max_batch` the most the text holds;
    `probe(hidden, layers, batch)` measures chars/s of such a model on this
    machine (called only for time budgets, at most once). Without `held_out` text the run
    learns the text itself (the lecture's `hihello`), so nothing is dropped out.
    """
    est = _Estimates(given, vocab_size, seq_len, steps_for, base_batch, max_batch)
    est.measure(probe)
    hidden, batch = est.best_shape(train_chars)
    layers = given.get("num_layers", layers_for(hidden))
    d = est.run_chars(hidden, batch)
    passes = d / max(train_chars, 1)
    steps = steps_for(batch) if est.max_time is None else None
    budget = format_budget(est.max_time) if est.max_time is not None else f"{steps:,} steps"
    plan = Plan(
        hidden_size=hidden,
        num_layers=layers,
        dropout=given.get("dropout", dropout_for(passes) if held_out else 0.0),
        weight_decay=given.get("weight_decay", weight_decay_for(passes) if held_out else 0.0),
        batch_size=batch,
        lr=given.get("lr", lr_for(hidden, batch)),
        warmup_steps=given.get("warmup_steps", min(TrainConfig.warmup_steps, max(1, (steps or 10**9) // 10))),
        train_chars=train_chars,
        run_chars=d,
        passes=passes,
        chars_per_sec=est.speed(hidden, batch),
        budget=budget,
        measured=est.measured,
        predicted_loss=round(predicted_loss(est.size(hidden), d), 4) if d else None,
    )
    plan.planned = [name for name in PLANNED if name not in given]
    shape = f"{layers}x{hidden}" + (f", dropout {plan.dropout:g}" if plan.dropout else "")
    shape += f", weight decay {plan.weight_decay:g}" if plan.weight_decay else ""
    over = f"is about {passes:.3g} passes over" if d else "on"  # d is 0: no speed was measured
    plan.why = f"{shape}, lr {plan.lr:.2g}, batch {batch}: {budget} {over} {human_size(train_chars)}"
    return plan


def timed_speed(
    step: Callable[[], None], chars: int, budget: float, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Characters per second of `step` (which trains on `chars` characters): the lower quartile
    of PROBE_MIN_STEPS..PROBE_MAX_STEPS timed calls, after PROBE_WARMUP untimed ones, stopping
    once they would take PROBE_SHARE of `budget` seconds at that speed. `clock` is injectable
    for tests."""
    for _ in range(PROBE_WARMUP):
        step()
    times: list[float] = []
    while len(times) < PROBE_MAX_STEPS:
        t = clock()
        step()
        times.append(clock() - t)
        # enough steps once they would take PROBE_SHARE of the budget at the quartile's speed:
        # counted at the step's real time, slow bursts would end the probe sooner, when it most
        # needs more steps
        if len(times) >= PROBE_MIN_STEPS and len(times) * _quartile(times) >= PROBE_SHARE * budget:
            break
    return chars / max(_quartile(times), 1e-9)


def _quartile(times: list[float]) -> float:
    """The lower quartile of some step times."""
    return sorted(times)[(len(times) - 1) // 4]


def probe_speed(
    cell: Cell, embedding: int, vocab_size: int, seq_len: int, device, precision: str, budget: float
):
    """A `probe` for make_plan: times training steps of a model on random text (timed_speed),
    for a run of `budget` seconds."""
    import torch

    from charnext.modeling.device import autocast
    from charnext.modeling.model import CharModel
    from charnext.training.optim import make_adamw

    def probe(hidden: int, layers: int, batch: int) -> float:
        state = torch.random.get_rng_state()
        try:
            model = CharModel(ModelConfig(vocab_size, cell, hidden, layers, embedding)).to(device)
            opt = make_adamw(model.parameters(), 1e-4, 0.0, device)
            x = torch.randint(0, vocab_size, (batch, seq_len), device=device)

            def step() -> None:
                with autocast(device, precision):
                    logits, _ = model(x)
                loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), x.flatten())
                opt.zero_grad()
                loss.backward()
                opt.step()
                if device.type == "cuda":
                    torch.cuda.synchronize()

            return timed_speed(step, batch * seq_len, budget)
        finally:
            torch.random.set_rng_state(state)  # the run's weights do not depend on the probe

    return probe
