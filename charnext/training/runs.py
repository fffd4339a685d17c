"""Building a run: a new one, one resumed from its checkpoint, or one started from a model's
weights (`--init-from`). Each returns a `Trainer` ready to `run()`.

What a run trains on comes as a `Source`: a text with where it came from (a file, standard
input, a literal), or a prepared folder. The checkpoint records it, so a resumed run can reopen
the same file or folder, checked against the text's fingerprint.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Collection
from dataclasses import replace
from functools import partial
from pathlib import Path

from charnext.config import RESUMABLE, ModelConfig, TrainConfig, parse_duration
from charnext.errors import ConfigError, TextError, UnknownCharactersError
from charnext.modeling.device import resolve_precision
from charnext.storage import checkpoint as ckpt
from charnext.storage.metrics import metrics_path
from charnext.storage.replacing import CHECKPOINT, METRICS, check_replaceable
from charnext.text.paths import shown_path
from charnext.text.prepare import PreparedData
from charnext.text.reading import fingerprint, text_lines
from charnext.text.source import Source, recorded_files
from charnext.text.vocab import Vocab, require_text
from charnext.training import distributed
from charnext.training.budget import Budget
from charnext.training.corpus import DEFAULT_BATCH, DEFAULT_LINE_BATCH, held_out_share
from charnext.training.planner import Plan, ProbeSpeed, make_plan, probe_speed
from charnext.training.run_state import check_resumable
from charnext.training.schedule import default_steps
from charnext.training.trainer import Trainer, best_path

NEWLINE = "\n"


def check_out_path(out: Path, source: Source | None = None, force: bool = False) -> None:
    """Refuse, before any training, a checkpoint path the run could not write or should not:
    a folder, a file in a folder this process cannot write to, the text being trained on
    (or a file of the prepared folder), or, unless `force`, a file that is not a charnext
    checkpoint (nor, beside it, the best checkpoint and the metrics log of their kinds). A
    missing folder is left to the save."""
    if out.is_dir():
        raise ConfigError(
            f"--out {shown_path(out)} is a folder; give the checkpoint's file name, "
            f"e.g. --out {shown_path(out / 'checkpoint.pt')}"
        )
    for beside in (best_path(out), metrics_path(out)):
        if beside.is_dir():
            raise ConfigError(
                f"cannot write {shown_path(beside)} beside --out {shown_path(out)}: it is a folder"
            )
    parent = out.parent
    if parent.is_dir():
        # a temporary file beside the checkpoint, as the save makes (os.access misjudges root)
        try:
            fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise ConfigError(f"cannot write {shown_path(out)}: {e.strerror or e}") from None
    if source is not None and source.path is not None and out.exists():
        inside = source.kind == "prepared" and out.resolve().parent == source.path.resolve()
        if inside or os.path.samefile(out, source.path):
            what = "a file of the prepared data" if inside else "the text"
            raise ConfigError(
                f"--out {shown_path(out)} is {what} being trained on; the checkpoint would "
                "overwrite it (give another --out)"
            )
    check_replaceable(out, CHECKPOINT, force)
    check_replaceable(best_path(out), CHECKPOINT, force, option="")
    check_replaceable(metrics_path(out), METRICS, force, option="")


def _check_not_a_file_trained_on(out: Path, source: Source | None) -> None:
    """Refuse an --out that is one of the several files being trained on."""
    if source is not None and out.exists() and any(os.path.samefile(out, p) for p in source.paths):
        raise ConfigError(
            f"--out {shown_path(out)} is one of the files being trained on; the checkpoint would "
            "overwrite it (give another --out)"
        )


def _as_source(text: str | PreparedData | Source) -> Source:
    if isinstance(text, Source):
        return text
    if isinstance(text, PreparedData):
        return Source(prepared=text, kind="prepared", path=text.path)
    return Source(text=text)


def new_run(
    text: str | PreparedData | Source,
    model_config: ModelConfig | None = None,
    config: TrainConfig | None = None,
    out: str | Path | None = "checkpoint.pt",
    init_from: str | Path | None = None,
    extend_vocab: bool = False,
    command: list[str] | None = None,
    given: Collection[str] | None = None,
    force: bool = False,
    since: float | None = None,
    **model_options,
) -> Trainer:
    """A fresh run on `text` (its vocabulary built from it), or from `init_from`'s weights.

    `text` may be a prepared corpus, which brings its own vocabulary. `model_options` (cell,
    hidden_size, ...) build the ModelConfig when none is given. `command` is the command line
    to record. With `given` (the ModelConfig and TrainConfig fields the user chose), the
    planner (charnext.training.planner) chooses the others for the text and the budget.
    `force` lets `out` replace a file that is not a charnext checkpoint. A --max-time budget
    counts from `since` (a perf_counter instant: the command line's process start), else now.
    """
    config = config or TrainConfig()
    source = _as_source(text)
    out = ckpt.output_path(out) if out else None
    if extend_vocab and init_from is None:
        raise ConfigError("--extend-vocab grows the vocabulary of --init-from's model; give --init-from")
    if out is not None:
        check_out_path(out, source, force)
        _check_not_a_file_trained_on(out, source)
    origin = {"command": command, "source": source.record()}
    if source.prepared is not None:
        if init_from is not None:
            raise ConfigError("--init-from trains on a text (--file), not on prepared data (--data)")
        options = model_config.to_dict() if model_config is not None else model_options
        return _prepared_run(source.prepared, options, config, out, given, origin, since)
    # several files: one text for the vocabulary, the plan and --init-from's check (their lines,
    # in line mode); the trainer keeps them apart
    text = source.text
    if source.documents is not None:
        text = (NEWLINE if config.lines else "").join(source.documents)
    require_text(text)
    init_weights = None
    if init_from is not None:
        vocab, model_config, init_weights = _from_weights(init_from, text, config, extend_vocab)
    else:
        vocab = Vocab.from_text(text + NEWLINE if config.lines and NEWLINE not in text else text)
        options = model_config.to_dict() if model_config is not None else model_options
        model_config = ModelConfig(**{**options, "vocab_size": len(vocab)})
    _check_prompt(config, vocab)
    plan = None
    if given is not None and init_weights is None:
        lines = text_lines(text) if config.lines else None
        model_config, config, plan = _plan(len(text), lines, model_config, config, given)
    return Trainer(
        text if source.documents is None else source.documents, vocab, model_config, config, out,
        text_fingerprint=source.fingerprint(), init_weights=init_weights, origin=origin, plan=plan,
        budget=_budget(config, since),
    )  # fmt: skip


def _budget(config: TrainConfig, since: float | None):
    """What makes a new run's time budget for its clock: --max-time from `since`."""
    return partial(Budget.of, config.max_time, since) if config.max_time is not None else None


def _prepared_run(
    data: PreparedData,
    options: dict,
    config: TrainConfig,
    out: Path | None,
    given,
    origin: dict,
    since: float | None = None,
) -> Trainer:
    """A fresh run on a prepared folder, which brings its own vocabulary and counts."""
    if config.lines:
        raise ConfigError("line mode trains on a text (--file), not on prepared data (--data)")
    model_config = ModelConfig(**{**options, "vocab_size": len(data.vocab)})
    _check_prompt(config, data.vocab)
    plan = None
    if given is not None:
        model_config, config, plan = _plan(len(data.tokens), None, model_config, config, given)
    return Trainer(
        data.tokens, data.vocab, model_config, config, out, text_fingerprint=data.fingerprint,
        vocab_counts=data.counts, origin=origin, plan=plan, lengths=data.lengths,
        budget=_budget(config, since),
    )  # fmt: skip


def _from_weights(
    path: str | Path, text: str, config: TrainConfig, extend_vocab: bool
) -> tuple[Vocab, ModelConfig, dict]:
    """The vocabulary, model and weights of a run started from `path`'s model: its vocabulary,
    grown by the text's new characters with `extend_vocab` (refused without)."""
    raw = ckpt.load_raw(path)
    vocab = Vocab(tuple(raw["vocab"]))
    unknown = vocab.unknown(text + (NEWLINE if config.lines else ""))
    if unknown and not extend_vocab:
        raise UnknownCharactersError(
            vocab.unknown_message(unknown) + " (add --extend-vocab to grow it)", unknown
        )
    vocab = Vocab(vocab.chars + tuple(unknown))
    return vocab, ModelConfig(**{**raw["model_config"], "vocab_size": len(vocab)}), raw["state_dict"]


def _plan(
    length: int,
    lines: list[str] | None,
    model_config: ModelConfig,
    config: TrainConfig,
    given: Collection[str],
) -> tuple[ModelConfig, TrainConfig, Plan]:
    """The configs with what the user did not give chosen by the planner, and the plan.

    `length` is the text's length in characters; `lines` its lines in line mode.
    """
    values = {**model_config.to_dict(), **config.to_dict()}
    chosen = {name: values[name] for name in given if name in values}
    if lines is not None:
        held_out = held_out_share(config, len(lines), lines=True)
        train_chars = int(sum(len(line) + 1 for line in lines) * (1 - held_out))
        seq_len = max(2, round(sum(len(line) + 1 for line in lines) / max(len(lines), 1)))
    else:
        held_out = held_out_share(config, length)
        train_chars = max(2, int(length * (1 - held_out)))
        seq_len = min(config.seq_len, train_chars - 1)

    def steps_for(batch: int) -> int:
        if config.steps is not None:
            return config.steps
        per_epoch = max(1, (train_chars - 1) // (batch * seq_len))
        if config.epochs is not None:
            return max(1, math.ceil(config.epochs * per_epoch))
        return default_steps(train_chars, batch * seq_len)

    rank_world = distributed.rank_world()
    probe = None
    if config.max_time is not None:
        device = distributed.process_device(config.device, rank_world[1])
        precision = resolve_precision(config.precision, device, model_config.cell)
        measure = probe_speed(model_config.cell, model_config.embedding_size, model_config.vocab_size,
                              seq_len, device, precision, config.max_time)  # fmt: skip

        def probe(hidden: int, layers: int, batch: int) -> ProbeSpeed:
            # every process measures; all plan with the means, so that all choose the same model
            mine = measure(hidden, layers, batch)
            speed, noise = distributed.weighted_mean([mine.chars_per_sec, mine.noise], 1.0, rank_world[1])
            return ProbeSpeed(speed * rank_world[1], noise)

    plan = make_plan(
        given=chosen, train_chars=train_chars, vocab_size=model_config.vocab_size, seq_len=seq_len,
        steps_for=steps_for, probe=probe, held_out=held_out > 0,
        base_batch=DEFAULT_LINE_BATCH if lines is not None else DEFAULT_BATCH,
        max_batch=None if lines is not None else max(1, (train_chars - 1) // seq_len),
        lines=lines is not None,
    )  # fmt: skip
    model_config = replace(model_config, hidden_size=plan.hidden_size, num_layers=plan.num_layers,
                           dropout=plan.dropout, weight_drop=plan.weight_drop)  # fmt: skip
    planned_train = {
        "batch_size": plan.batch_size, "lr": plan.lr, "warmup_steps": plan.warmup_steps,
        "weight_decay": plan.weight_decay,
    }  # fmt: skip
    config = replace(config, **{k: v for k, v in planned_train.items() if k not in chosen})
    return model_config, config, plan


def resume_run(
    path: str | Path,
    text: str | PreparedData | Source | None = None,
    out: str | Path | None = None,
    command: list[str] | None = None,
    force: bool = False,
    since: float | None = None,
    **overrides,
) -> Trainer:
    """Continue the run saved in `path`, on the same text (None: reopen the file or folder it
    recorded). The model, optimizer, schedule, step, random state and position in the data
    continue where they stopped.

    `overrides` are TrainConfig or ModelConfig fields. Those marked resumable (config.RESUMABLE)
    apply; any other is refused with a ConfigError naming it, unless it equals the recorded value.
    `force`: see new_run. With `max_time` given it trains that much more, from `since`; without,
    a timed run trains for what it has left, and is refused if nothing is left."""
    raw = ckpt.load_raw(path)
    if not isinstance(raw.get("resume"), dict) or not isinstance(raw.get("train_config"), dict):
        raise ConfigError(f"{shown_path(path)} holds no resumable training state; use --init-from")
    check_resumable(path, raw)
    _refuse_changes(path, raw, overrides)
    budget = _resumed_budget(raw, path, overrides.get("max_time"), since)  # refused here if nothing is left
    source = _as_source(text) if text is not None else _reopen(raw, path)
    target = ckpt.output_path(out) if out else Path(path)
    check_out_path(target, source, force)
    _check_not_a_file_trained_on(target, source)
    counts = lengths = None
    if source.prepared is not None:
        source.prepared.require_vocab(raw["vocab"], path)
        data, counts, lengths = source.prepared.tokens, source.prepared.counts, source.prepared.lengths
    else:
        source = _in_recorded_order(source, raw.get("source"))
        data = source.text if source.documents is None else source.documents
    fp = source.fingerprint()
    if raw.get("text") and raw["text"].get("sha256") != fp["sha256"]:
        files = _files_changed(raw.get("source"), source)
        if text is None:
            changed = files or f"{shown_path(source.path)} has changed"
            raise TextError(
                f"{changed} since {shown_path(path)} was trained on it "
                f"({raw['text'].get('length')} characters then, {fp['length']} now); give the "
                "original text, or use --init-from to train further on this one"
            )
        differs = f"the files differ from those {shown_path(path)} was trained on ({files})" if files else (
            f"the text differs from the one {shown_path(path)} was trained on "
            f"({raw['text'].get('length')} characters)"
        )  # fmt: skip
        raise TextError(f"{differs}; to train further on another text, use --init-from")
    applied = {k: v for k, v in overrides.items() if k in RESUMABLE and v is not None}
    config = TrainConfig.from_dict({**raw["train_config"], **applied})
    vocab = Vocab(tuple(raw["vocab"]))
    _check_prompt(config, vocab)
    model_config = ModelConfig(**raw["model_config"])
    origin = {"command": command, "source": source.record() if text is not None else raw.get("source")}
    return Trainer(
        data, vocab, model_config, config, target,
        text_fingerprint=fp, vocab_counts=counts, resume=raw, resumed_from=Path(path), origin=origin,
        lengths=lengths, budget=budget,
    )  # fmt: skip


def _resumed_budget(raw: dict, path: str | Path, max_time, since: float | None):
    """What makes a resumed run's time budget: --max-time T given, T more (from `since`);
    else, for a run trained under a time budget, what it has left of its clock (from the
    schedule it recorded), refused now, before anything loads, where nothing is left."""
    if max_time is not None:
        seconds = parse_duration(max_time, "max_time") if isinstance(max_time, str) else float(max_time)
        return partial(Budget.of, seconds, since, more=True)
    recorded = raw["train_config"].get("max_time")
    if recorded is None:
        return None
    schedule = (raw.get("provenance") or {}).get("schedule") or {}
    end = float(schedule["max_time"] if schedule.get("max_time") is not None else recorded)
    elapsed = float((raw.get("resume") or {}).get("elapsed") or 0.0)
    Budget.left_over(end, elapsed, shown_path(path))  # raises if nothing is left
    return partial(Budget.left_over, end, where=shown_path(path))


def _refuse_changes(path: str | Path, raw: dict, overrides: dict) -> None:
    """A ConfigError naming the first option given that a resumed run cannot change (one not
    marked resumable, given with a value other than the recorded one)."""
    recorded = {**raw["model_config"], **raw["train_config"]}
    changed = {
        name: value for name, value in overrides.items()
        if name not in RESUMABLE and value is not None and _differs(value, recorded.get(name))
    }  # fmt: skip
    if changed:
        name, value = sorted(changed.items())[0]
        option = "--" + name.replace("_", "-")
        raise ConfigError(
            f"cannot change {option} when resuming (the run has {_shown(recorded.get(name))}, "
            f"given {_shown(value)}); start a new run, or --init-from {shown_path(path)} to keep its weights"
        )


def _reopen(raw: dict, path: str | Path) -> Source:
    """The file or prepared folder a checkpoint records, opened again."""
    source = raw.get("source") if isinstance(raw.get("source"), dict) else {}
    kind, where = source.get("kind"), source.get("path")
    where = where if isinstance(where, str) else None
    if kind == "file" and where:
        if not Path(where).is_file():
            raise TextError(
                f"{shown_path(path)} was trained on {shown_path(where)}, "
                "which is gone; give the text (--file)"
            )
        return Source.file(where)
    if kind == "files" and isinstance(source.get("files"), list):
        paths = [f.get("path") for f in source["files"] if isinstance(f, dict)]
        gone = [p for p in paths if not isinstance(p, str) or not Path(p).is_file()]
        if gone:
            more = f" (and {len(gone) - 1} more)" if len(gone) > 1 else ""
            raise TextError(
                f"{shown_path(path)} was trained on {len(paths)} files; {shown_path(str(gone[0]))}{more} "
                "is gone; give the files (--file)"
            )
        return Source.files(paths)
    if kind == "prepared" and where:
        if not Path(where).is_dir():
            raise TextError(
                f"{shown_path(path)} was trained on {shown_path(where)}, "
                "which is gone; give the data (--data)"
            )
        return Source.folder(where)
    said = {"stdin": "standard input", "text": "a text given on the command line"}.get(
        kind, "a text it did not record"
    )
    raise TextError(f"{shown_path(path)} was trained on {said}; give the text again (TEXT, --file or --data)")


def _in_recorded_order(source: Source, record) -> Source:
    """Several files given again in another order (another shell, --file in another order):
    the same files in the order the checkpoint recorded, so that the run reads them as it did."""
    recorded = recorded_files(record)
    if source.documents is None or not recorded:
        return source
    where = {f["sha256"]: i for i, f in reversed(list(enumerate(recorded))) if "sha256" in f}
    mine = source.file_records()
    if sorted(f["sha256"] for f in mine) != sorted(f.get("sha256", "") for f in recorded):
        return source
    order = sorted(range(len(mine)), key=lambda i: (where[mine[i]["sha256"]], i))
    return replace(
        source, documents=[source.documents[i] for i in order], paths=[source.paths[i] for i in order]
    )


def _files_changed(record, source: Source) -> str | None:
    """What differs between the files a checkpoint recorded and those of `source`, in words
    ("b.txt changed, d.txt added, c.txt missing"), or None where it trained on no file."""
    recorded = recorded_files(record)
    if recorded is None or (source.kind not in ("file", "files")):
        return None
    then = {f.get("path"): f.get("sha256") for f in recorded}
    now = {r["path"]: r["sha256"] for r in source.file_records()} if source.documents is not None else {
        str(source.path.resolve()): fingerprint(source.text)["sha256"]
    }  # fmt: skip
    words = [f"{shown_path(p)} changed" for p in now if p in then and then[p] not in (None, now[p])]
    words += [f"{shown_path(p)} added" for p in now if p not in then]
    words += [f"{shown_path(p)} missing" for p in then if p not in now]
    return ", ".join(words[:3]) + (f" and {len(words) - 3} more" if len(words) > 3 else "") if words else None


def _differs(given, recorded) -> bool:
    """Whether an option's value differs from the recorded one (enums compare by value)."""
    given = getattr(given, "value", given)
    if isinstance(given, float) or isinstance(recorded, float):
        try:
            return float(given) != float(recorded)
        except (TypeError, ValueError):
            return True
    return given != recorded


def _shown(value) -> str:
    value = getattr(value, "value", value)
    return "none" if value is None else str(value)


def _check_prompt(config: TrainConfig, vocab: Vocab) -> None:
    """Refuse a preview prompt with characters the vocabulary lacks, before training starts."""
    if config.sample_prompt:
        unknown = vocab.unknown(config.sample_prompt)
        if unknown:
            raise UnknownCharactersError("--sample-prompt: " + vocab.unknown_message(unknown), unknown)
