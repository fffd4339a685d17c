"""The plan of a run: the model, regularisation and optimisation a budget can buy on a text.

What the user leaves out of `charnext train`, the planner chooses from four facts: how many
characters the text has, how long the run may take (`--max-time`, `--steps`, `--epochs`, or
the default), the cell, and how fast this machine trains it (measured at start, a fraction of
a second). The rule, in order:

1. **Characters the run will see** (`D`): a time budget times the measured speed of the
   model in question, or steps (epochs) times the characters of a step.
2. **Size**: the widest model on `LADDER` that still sees at least `CHARS_PER_PARAM`
   characters per parameter in the run (below that, a smaller model learns more in the same
   time), and holds at most `PARAMS_PER_CHAR` parameters per character of text (above that,
   it can only memorise).
3. **Dropout**: none while the run makes few passes over the text; more as passes add up,
   since a model that sees the same text many times starts to memorise it; from
   `WEIGHT_DROP_PASSES` passes on, weight drop on the recurrent weights beside it. None at
   all when nothing is held out (a short text, learnt by heart as the lecture does).
4. **Learning rate**: falls as the model widens (`LR_256 * sqrt(256 / hidden)`): the
   lecture's 5-unit model wants about 0.06, a 512-unit one about 0.006.
5. **Batch**: 16 windows; a batch of lines doubles from 64 while the run still makes
   `MIN_PLANNED_STEPS` steps (larger batches run faster per character on a CPU but learn less
   per character, and 32 windows lost to 16 on two texts).

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
# A run should train on at least this many characters per parameter. On tinyshakespeare
# (docs/planning.md), 90 s on an Intel Xeon (2 vCPUs, bf16): 2x256 (5-6 chars per parameter)
# reached 1.437-1.444 where 2x384 (1.4-1.5) reached 1.451-1.483, three runs each; an earlier
# rule's 10 min runs had 2x512 (1.3) beat 2x384 (3.5) by 0.02.
CHARS_PER_PARAM = 2.0
# At most this many parameters per character of training text: beyond it a model only
# memorises, whatever the budget. On 18 KB of verse in 90 s (hundreds of passes, dropout 0.35)
# 2x128 (13.5 parameters per character) reached 1.81 nats/char where 1x32 (1.1) reached 2.00.
PARAMS_PER_CHAR = 16.0
LR_256 = 8e-3  # peak learning rate of a 256-unit model; others scale by sqrt(256 / hidden)
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
# Weight drop (AWD-LSTM's DropConnect on the recurrent weights, one mask per window) beside the
# dropout, from WEIGHT_DROP_PASSES passes on, about where dropout reaches its cap (31) and a run
# still learns its text by heart. Intel Xeon, 10 min: names (2x384, dropout 0.35, 49 passes)
# 1.937-1.953 in four runs without it, 1.9017 with 0.5; tinyshakespeare (2x512, dropout 0.15, 8
# passes) 1.3813 without, 1.4481 with; 180 KB of verse at 20 passes (90 s): 0.3 of it cost 0.03
# (docs/planning.md).
WEIGHT_DROP = 0.5
WEIGHT_DROP_PASSES = 32.0
# More of it from WEIGHT_DROP_MORE_PASSES passes on. The stdlib's function names (43 KB, 2x192,
# dropout 0.35), Intel Xeon: at 100-200 passes (90 s) 0.5 reached 1.6027 and 0.7 1.6498; at
# 1,150-1,240 passes (10 min) 0.5 reached 1.6251 (best 1.6020) and 0.7 1.5935 (best 1.5929).
WEIGHT_DROP_MORE = 0.7
WEIGHT_DROP_MORE_PASSES = 512.0
# Under a time or epoch budget a batch of lines doubles from the default (64 lines) at most
# twice, while the run still makes MIN_PLANNED_STEPS steps: on names, 128 lines learnt as much per
# character as 64 and ran faster (docs/planning.md). A batch of windows stays at 16: at 90 s,
# 32 windows at the same learning rate lost to 16 on tinyshakespeare (1.454 against 1.437-1.444)
# and on prose (1.501 against 1.469), and no text has shown what learning rate a larger one would
# want. A step budget keeps the default batch, so that a step costs what the user expects.
LINE_BATCH_DOUBLINGS = 2
MIN_PLANNED_STEPS = 3000
TIME_FOR_TRAINING = 0.92  # share of a time budget spent in optimizer steps (validation, saving)
# Characters per second grow with the batch on a CPU (raw_rnn_loop, 2x256 LSTM, bf16, batches
# of 16, 32 and 64 windows), relative to the probe's batch: one doubling down, none, one up.
PROBE_BATCH = 32
BATCH_SPEED = {-1: 0.84, 0: 1.0, 1: 1.23, 2: 1.4}
# Time per character grows with parameters plus a fixed cost, as if every model had this many
# more (fitted to raw_rnn_loop on 2x128 .. 2x768 LSTMs).
FIXED_COST_PARAMS = 160_000
# what needs the probe
SPEED_DEPENDENT = {"hidden_size", "batch_size", "dropout", "weight_decay", "weight_drop"}
PROBE_HIDDEN = 256  # the model timed at the start of a time-budgeted run
# The probe times PROBE_MIN_STEPS to PROBE_MAX_STEPS steps, after PROBE_WARMUP untimed ones, and
# stops once they would have taken PROBE_SHARE of the budget without slow bursts (a 90 s run:
# about half a second; bursts of 4x keep the whole under 2%). It takes
# the lower quartile of their times: another process that wakes up slows a few steps by 2-4x,
# which a median of three (the earlier probe) let through, so that one 90 s run planned 2x192
# and the next 2x256 on the same machine. The quartile of eight or more steps ignores such bursts
# (tests/test_planner.py injects them); what the run really meets is followed during the run
# (the learning rate and dropout follow the clock).
PROBE_WARMUP = 2
PROBE_MIN_STEPS = 8
PROBE_MAX_STEPS = 16
PROBE_SHARE = 0.005
# The probe's noise, read from its fast steps, was 2-7% in six probes of a 2x256 LSTM on an Intel
# Xeon (2 vCPUs). Where bursts reach a quarter of the steps it reads more; at most this much of
# it makes the plan cautious (its choices taken at the speed less the noise).
MAX_PROBE_NOISE = 0.25


@dataclass
class Plan:
    """What the planner chose, and why: recorded in the checkpoint."""

    hidden_size: int  # units per layer
    num_layers: int  # recurrent layers
    dropout: float  # dropout between layers and before the head
    weight_decay: float  # AdamW weight decay
    weight_drop: float  # DropConnect on the recurrent weights in training
    batch_size: int  # windows (lines) per step
    lr: float  # peak learning rate
    warmup_steps: int  # steps of linear warm-up
    train_chars: int  # characters of the training text
    run_chars: float  # characters the run is expected to train on
    passes: float  # run_chars / train_chars
    chars_per_sec: float | None  # measured (time budgets) and scaled to the chosen model
    probe_noise: float | None  # how far the probe's steps spread (ProbeSpeed.noise); None: no probe
    budget: str  # "10m", "3000 steps", ...
    planned: list[str] = field(default_factory=list)  # the fields the plan set (the rest were given)
    why: str = ""  # the header line

    def to_dict(self) -> dict:
        """Plain values, for the checkpoint's provenance and JSON."""
        return asdict(self)

    def regularisation_for(self, passes: float) -> dict[str, float]:
        """The dropout, weight decay and weight drop this plan would choose for a run now
        expected to make `passes` passes over its text (a time budget on a machine slower or
        faster than the probe at the start), for those it set (none where all were given). The
        plan itself stays as chosen: the trainer records each change beside it."""
        chosen: dict[str, float] = {}
        if "dropout" in self.planned:
            chosen["dropout"] = dropout_for(passes)
        if "weight_decay" in self.planned:
            chosen["weight_decay"] = weight_decay_for(passes)
        if "weight_drop" in self.planned:
            chosen["weight_drop"] = weight_drop_for(passes)
        return chosen


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


def lr_for(hidden: int) -> float:
    """The peak learning rate of a model `hidden` units wide."""
    return min(MAX_LR, LR_256 * math.sqrt(256 / hidden))


def dropout_for(passes: float) -> float:
    """Dropout for a run that makes `passes` passes over its text."""
    if passes <= DROPOUT_FREE_PASSES:
        return 0.0
    d = DROPOUT_PER_DOUBLING * math.log2(passes / DROPOUT_FREE_PASSES)
    return round(round(min(MAX_DROPOUT, d) / DROPOUT_STEP) * DROPOUT_STEP, 2)


def weight_decay_for(passes: float) -> float:
    """AdamW weight decay for a run that makes `passes` passes: only where dropout is due."""
    return WEIGHT_DECAY if dropout_for(passes) > 0 else 0.0


def weight_drop_for(passes: float) -> float:
    """Weight drop for a run that makes `passes` passes: only from WEIGHT_DROP_PASSES on, and
    more from WEIGHT_DROP_MORE_PASSES on."""
    if passes >= WEIGHT_DROP_MORE_PASSES:
        return WEIGHT_DROP_MORE
    return WEIGHT_DROP if passes >= WEIGHT_DROP_PASSES else 0.0


def human_size(chars: float) -> str:
    """1234567 -> '1.2 MB' (characters, as bytes of ASCII text)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if chars >= size:
            return f"{chars / size:.1f} {unit}"
    return f"{int(chars)} chars"


class _Estimates:
    """What a run of a given shape would train on: the figures make_plan weighs, from the
    options given, the text and (under a time budget) one speed probe."""

    def __init__(self, given: dict, vocab_size: int, seq_len: int, steps_for: Callable[[int], int],
                 base_batch: int, max_batch: int | None, doublings: int):  # fmt: skip
        self.given, self.vocab_size, self.seq_len, self.steps_for = given, vocab_size, seq_len, steps_for
        self.base_batch, self.max_batch, self.doublings = base_batch, max_batch, doublings
        self.cell = Cell(given.get("cell", Cell.lstm))
        self.embedding = given.get("embedding_size", ModelConfig.embedding_size)
        self.max_time = given.get("max_time")
        self.speed_ref: float | None = None  # the probe's chars/s
        self.noise: float | None = None  # and how far its steps spread (ProbeSpeed.noise)
        self.ref_cost = 0.0  # and the cost of the model it measured

    def measure(self, probe: Callable[[int, int, int], float | ProbeSpeed] | None) -> None:
        """Under a time budget, probe the speed once (unless every option it informs is given)."""
        if self.max_time is None or probe is None or SPEED_DEPENDENT <= self.given.keys():
            return
        hidden = self.given.get("hidden_size", PROBE_HIDDEN)
        measured = probe(hidden, self.given.get("num_layers", layers_for(hidden)), PROBE_BATCH)
        self.speed_ref = float(measured)
        self.noise = measured.noise if isinstance(measured, ProbeSpeed) else 0.0
        self.ref_cost = self.size(hidden) + FIXED_COST_PARAMS

    def size(self, hidden: int) -> int:
        layers = self.given.get("num_layers", layers_for(hidden))
        return parameters(self.cell, hidden, layers, self.vocab_size, self.embedding)

    def speed(self, hidden: int, batch: int, sure: bool = False) -> float | None:
        """The chars/s of a model `hidden` wide at `batch`, scaled from the probe's; `sure`: at
        the slowest speed within the probe's own noise."""
        if self.speed_ref is None:
            return None
        doublings = max(-1, min(2, round(math.log2(batch / PROBE_BATCH))))
        ref = self.speed_ref / (1.0 + self.noise) if sure and self.noise else self.speed_ref
        return ref * self.ref_cost / (self.size(hidden) + FIXED_COST_PARAMS) * BATCH_SPEED[doublings]

    def run_chars(self, hidden: int, batch: int, sure: bool = False) -> float:
        if self.max_time is not None:
            return (self.speed(hidden, batch, sure) or 0.0) * self.max_time * TIME_FOR_TRAINING
        return self.steps_for(batch) * batch * self.seq_len

    def batch_for(self, hidden: int) -> int:
        """The default batch; a batch of lines doubled (under a time or epoch budget) while the
        run would still make MIN_PLANNED_STEPS steps at the slowest speed within the probe's noise."""
        if "batch_size" in self.given:
            return self.given["batch_size"]
        chosen = self.base_batch
        if self.max_time is not None or self.given.get("epochs") is not None:
            for b in (self.base_batch * 2**k for k in range(1, self.doublings + 1)):
                if self.run_chars(hidden, b, sure=True) / (b * self.seq_len) >= MIN_PLANNED_STEPS:
                    chosen = b
        return max(1, min(chosen, self.max_batch or chosen))

    def hidden_for(self, train_chars: int) -> int:
        """The widest model of the ladder that the run trains on enough characters per
        parameter, and that is not too large for the text. Like the batch, the width is chosen
        at the slowest speed within the probe's noise: a model that only a lucky reading of the
        probe would buy is not bought."""
        if "hidden_size" in self.given:
            return self.given["hidden_size"]
        hidden = LADDER[0]
        for h in LADDER:
            d = self.run_chars(h, self.batch_for(h), sure=True)
            if d / self.size(h) >= CHARS_PER_PARAM and self.size(h) <= PARAMS_PER_CHAR * max(train_chars, 1):
                hidden = h
            elif h > hidden:
                break
        return hidden


def make_plan(
    *,
    given: dict,
    train_chars: int,
    vocab_size: int,
    seq_len: int,
    steps_for: Callable[[int], int],
    probe: Callable[[int, int, int], float | ProbeSpeed] | None,
    held_out: bool = True,
    base_batch: int = 16,
    max_batch: int | None = None,
    lines: bool = False,
) -> Plan:
    """Choose what `given` (ModelConfig and TrainConfig fields the user set) leaves open.

    `steps_for(batch)` gives the planned steps of a run with no time budget;
    `base_batch` is the default batch and `max_batch` the most the text holds; a batch of
    `lines` may double (LINE_BATCH_DOUBLINGS), one of windows does not;
    `probe(hidden, layers, batch)` measures chars/s of such a model on this
    machine, as a float or a ProbeSpeed with its noise (called only for time budgets, at most
    once). Without `held_out` text the run
    learns the text itself (the lecture's `hihello`), so nothing is dropped out.
    """
    doublings = LINE_BATCH_DOUBLINGS if lines else 0
    est = _Estimates(given, vocab_size, seq_len, steps_for, base_batch, max_batch, doublings)
    est.measure(probe)
    hidden = est.hidden_for(train_chars)
    layers = given.get("num_layers", layers_for(hidden))
    batch = est.batch_for(hidden)
    d = est.run_chars(hidden, batch)
    passes = d / max(train_chars, 1)
    steps = steps_for(batch) if est.max_time is None else None
    budget = format_budget(est.max_time) if est.max_time is not None else f"{steps:,} steps"
    plan = Plan(
        hidden_size=hidden,
        num_layers=layers,
        dropout=given.get("dropout", dropout_for(passes) if held_out else 0.0),
        weight_decay=given.get("weight_decay", weight_decay_for(passes) if held_out else 0.0),
        weight_drop=given.get("weight_drop", weight_drop_for(passes) if held_out else 0.0),
        batch_size=batch,
        lr=given.get("lr", lr_for(hidden)),
        warmup_steps=given.get("warmup_steps", min(TrainConfig.warmup_steps, max(1, (steps or 10**9) // 10))),
        train_chars=train_chars,
        run_chars=d,
        passes=passes,
        chars_per_sec=est.speed(hidden, batch),
        probe_noise=est.noise,
        budget=budget,
    )
    plan.planned = [name for name in PLANNED if name not in given]
    shape = f"{layers}x{hidden}" + (f", dropout {plan.dropout:g}" if plan.dropout else "")
    shape += f", weight decay {plan.weight_decay:g}" if plan.weight_decay else ""
    shape += f", weight drop {plan.weight_drop:g}" if plan.weight_drop else ""
    over = f"is about {passes:.3g} passes over" if d else "on"  # d is 0: no speed was measured
    plan.why = f"{shape}, lr {plan.lr:.2g}, batch {batch}: {budget} {over} {human_size(train_chars)}"
    return plan


@dataclass(frozen=True)
class ProbeSpeed:
    """What the probe measured: chars/s at its steps' lower quartile, and its noise, how much
    longer that quartile's step took than the fastest (0.1: 10%): the spread of the steps the
    speed is read from (slow bursts, which the quartile ignores, leave it alone too). Decisions
    that only a speed faster by less than the noise would change are not taken
    (_Estimates.speed's `sure`)."""

    chars_per_sec: float
    noise: float

    def __float__(self) -> float:
        return self.chars_per_sec


def timed_speed(
    step: Callable[[], None], chars: int, budget: float, clock: Callable[[], float] = time.perf_counter
) -> ProbeSpeed:
    """Characters per second of `step` (which trains on `chars` characters): the lower quartile
    of PROBE_MIN_STEPS..PROBE_MAX_STEPS timed calls, after PROBE_WARMUP untimed ones, stopping
    once they would take PROBE_SHARE of `budget` seconds at that speed, with the steps' noise.
    `clock` is injectable for tests."""
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
    quartile = max(_quartile(times), 1e-9)
    noise = min(MAX_PROBE_NOISE, max(0.0, quartile / max(min(times), 1e-9) - 1.0))
    return ProbeSpeed(chars / quartile, noise)


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

    def probe(hidden: int, layers: int, batch: int) -> ProbeSpeed:
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
