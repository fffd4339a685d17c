"""Runs you can trust: the divergence guard, honest resume, checkpoints that tell the truth,
the metrics log and provenance, closed pipes, threads."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from charnext import api
from charnext.cli.app import app
from charnext.config import ModelConfig, TrainConfig
from charnext.errors import ConfigError, TextError, TrainingDiverged, UnknownCharactersError
from charnext.events import EvalEvent, RowEvent, StepEvent
from charnext.modeling.cpuload import IdleSample
from charnext.modeling.device import configure_threads, idle_cpus
from charnext.storage import checkpoint as ckpt
from charnext.storage.metrics import read_metrics
from charnext.text.prepare import prepare
from charnext.training import runs
from charnext.training.runs import Source, new_run
from charnext.training.trainer import best_path

SMALL = dict(hidden_size=16, num_layers=1, embedding_size=8)
SMALL_CLI = ["--hidden-size", "16", "--num-layers", "1", "--embedding-size", "8"]
runner = CliRunner()


def cli(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def one_line_error(result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def finite_weights(path: Path) -> bool:
    return all(torch.isfinite(t).all() for t in ckpt.load(path).model.state_dict().values())


@pytest.fixture
def poem_file(tmp_path, poem) -> Path:
    path = tmp_path / "poem.txt"
    path.write_text(poem, encoding="utf-8")
    return path


# -- the divergence guard ----------------------------------------------------------------------


def test_lr_1e6_stops_with_exit_code_3_and_writes_nothing(poem_file, tmp_path):
    out = tmp_path / "d.pt"
    result = cli("train", "--file", poem_file, "--lr", "1e6", "--steps", "40", "--out", out, *SMALL_CLI)
    line = one_line_error(result, 3)
    assert "diverged at step" in line and "lower --lr" in line and "wrote no checkpoint" in line
    assert not out.exists() and not best_path(out).exists()


def test_divergence_keeps_the_last_good_checkpoints(poem, tmp_path):
    out = tmp_path / "n.pt"
    config = TrainConfig(
        steps=60, seq_len=16, batch_size=4, val_fraction=0.2, eval_every=10, precision="fp32"
    )
    untrained = new_run(poem, None, config, None, **SMALL).evaluate_validation().loss
    trainer = new_run(poem, None, config, out, **SMALL)
    with pytest.raises(TrainingDiverged, match=r"diverged at step 2[34].*n\.pt keeps step 20"):
        for event in trainer.run():
            if isinstance(event, StepEvent) and event.step == 21:
                with torch.no_grad():  # an injected NaN: every later gradient is NaN
                    trainer.model.head.weight[0, 0] = math.nan
    for path in (out, best_path(out)):
        raw = ckpt.load_raw(path)
        assert raw["step"] == 20 and finite_weights(path)
        assert raw["summary"]["val_loss"] < untrained


def test_a_single_non_finite_step_is_skipped(poem, tmp_path):
    config = TrainConfig(steps=12, seq_len=16, batch_size=4, precision="fp32")
    trainer = new_run(poem, None, config, tmp_path / "s.pt", **SMALL)
    net = trainer.net

    def poisoned(x, state):  # the forward pass of step 5 overflows, as bf16 may
        logits, new_state = net(x, state)
        return (logits * math.nan, new_state) if trainer.step == 4 else (logits, new_state)

    trainer.net = poisoned
    before = {}
    for event in trainer.run():
        if isinstance(event, StepEvent) and event.step == 4:
            before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        if isinstance(event, StepEvent) and event.step == 5:
            after = trainer.model.state_dict()
            assert all(torch.equal(before[k], after[k]) for k in before)  # weights untouched
    assert trainer.result.steps == 12 and trainer.result.skipped_steps == 1
    assert finite_weights(tmp_path / "s.pt")


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_the_guard_stays_quiet_on_healthy_runs(cell, poem, names):
    for text, lines in ((poem, False), (names, True)):
        for lr in (0.003, 0.03, 0.1):
            api.train(text, None, cell=cell, lr=lr, steps=60, lines=lines, seq_len=32, batch_size=8, **SMALL)


# -- honest resume -----------------------------------------------------------------------------

# Every option of `train` and what it does with --resume: "applies", "refused" (unless equal to
# the recorded value), or "input" (the text, the checkpoint, output and process settings).
RESUME_TABLE = {
    "text": "input", "file": "input", "data": "input", "resume": "input", "out": "applies",
    "force": "applies", "json_out": "applies", "dist_timeout": "applies", "threads": "applies",
    "steps": "applies", "epochs": "applies", "max_time": "applies", "patience": "applies",
    "eval_every": "applies", "device": "applies", "precision": "applies", "lr": "applies",
    "sample_prompt": "applies", "sample_temperature": "applies",
    "cell": "refused", "hidden_size": "refused", "num_layers": "refused", "embedding_size": "refused",
    "dropout": "refused", "seq_len": "refused", "batch_size": "refused", "seed": "refused",
    "weight_drop": "refused", "weight_decay": "refused", "val_fraction": "refused", "lines": "refused",
    "random_windows": "refused", "ema": "refused", "cold_starts": "refused",
    "init_from": "refused", "extend_vocab": "refused",
}  # fmt: skip
REFUSED_VALUES = {
    "cell": "gru", "hidden_size": "8", "num_layers": "2", "embedding_size": "4", "dropout": "0.5",
    "seq_len": "8", "batch_size": "2", "seed": "9", "val_fraction": "0.3", "lines": None,
    "random_windows": None, "init_from": "x.pt", "extend_vocab": None, "weight_drop": "0.2",
    "weight_decay": "0.3", "cold_starts": "0.5",
}  # fmt: skip


@pytest.fixture
def run_pt(poem_file, tmp_path) -> Path:
    out = tmp_path / "run.pt"
    result = cli("train", "--file", poem_file, "--out", out, "--steps", "6", "--seq-len", "16",
                 "--batch-size", "4", "--val-fraction", "0.2", "--eval-every", "3", *SMALL_CLI)  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_every_train_option_is_in_the_resume_table():
    import typer.main

    command = typer.main.get_command(app).commands["train"]
    assert {p.name for p in command.params} == set(RESUME_TABLE)
    assert {k for k, v in RESUME_TABLE.items() if v == "applies"} - {
        "out",
        "force",
        "json_out",
        "dist_timeout",
        "threads",
    } == set(runs.RESUMABLE)


@pytest.mark.parametrize("name", sorted(REFUSED_VALUES))
def test_options_resume_cannot_apply_are_refused_by_name(run_pt, name):
    flag = "--" + name.replace("_", "-")
    value = REFUSED_VALUES[name]
    result = cli("train", "--resume", run_pt, flag, *([value] if value is not None else []))
    line = one_line_error(result, 2 if name in ("init_from", "extend_vocab") else 1)
    assert flag in line, line
    assert ckpt.load_raw(run_pt)["step"] == 6  # untouched


def test_options_given_with_their_recorded_values_are_accepted(run_pt):
    result = cli("train", "--resume", run_pt, "--steps", "7", "--hidden-size", "16", "--seq-len", "16")
    assert result.exit_code == 0, result.output
    assert ckpt.load_raw(run_pt)["step"] == 7


def test_options_resume_applies_take_effect(run_pt, tmp_path):
    trainer = runs.resume_run(
        run_pt, None, out=tmp_path / "other.pt", steps=9, lr=0.002, patience=4, eval_every=2,
        precision="fp32", sample_prompt="Tyger", sample_temperature=0.0,
    )  # fmt: skip
    c = trainer.config
    assert (c.steps, c.lr, c.patience, c.eval_every, c.precision) == (9, 0.002, 4, 2, "fp32")
    assert trainer.out == tmp_path / "other.pt"
    events = list(trainer.run())
    assert trainer.result.steps == 9
    lrs = [e.lr for e in events if isinstance(e, StepEvent)]
    assert max(lrs) <= 0.002  # the new peak, not the old 0.008
    assert all(e.prompt == "Tyger" for e in events if isinstance(e, EvalEvent))


def test_resume_without_the_text_reopens_the_file_bitwise(run_pt, tmp_path, poem):
    copy = tmp_path / "copy.pt"
    shutil.copy(run_pt, copy)
    shutil.copy(run_pt.with_name("run.metrics.jsonl"), tmp_path / "copy.metrics.jsonl")
    assert cli("train", "--resume", run_pt, "--steps", "12").exit_code == 0  # no text
    with_text = cli("train", poem, "--resume", copy, "--steps", "12")
    assert with_text.exit_code == 0, with_text.output
    a, b = ckpt.load(run_pt).model.state_dict(), ckpt.load(copy).model.state_dict()
    assert ckpt.load_raw(run_pt)["step"] == 12 and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_changed_file_and_a_text_it_cannot_reopen(run_pt, poem_file, tmp_path):
    poem_file.write_text(poem_file.read_text() + "more", encoding="utf-8")
    line = one_line_error(cli("train", "--resume", run_pt, "--steps", "8"), 1)
    assert "has changed since" in line and str(poem_file.resolve()) in line
    assert cli("train", "hihello", "--out", tmp_path / "h.pt", "--steps", "2", *SMALL_CLI).exit_code == 0
    line = one_line_error(cli("train", "--resume", tmp_path / "h.pt", "--steps", "3"), 1)
    assert "a text given on the command line" in line and "give the text again" in line


def test_resume_without_the_text_reopens_a_prepared_folder(poem_file, tmp_path):
    prepare(poem_file, tmp_path / "prep")
    out = tmp_path / "p.pt"
    assert cli("train", "--data", tmp_path / "prep", "--out", out, "--steps", "3", *SMALL_CLI).exit_code == 0
    result = cli("train", "--resume", out, "--steps", "5")
    assert result.exit_code == 0, result.output
    assert ckpt.load_raw(out)["step"] == 5 and ckpt.load_raw(out)["source"]["kind"] == "prepared"


class Called(Exception):
    pass


def test_train_hands_the_core_exactly_the_given_options(monkeypatch, tmp_path):
    calls = []

    def fake(*args, **kwargs):
        calls.append((args, kwargs))
        raise ConfigError("stop")

    monkeypatch.setattr(runs, "new_run", fake)
    monkeypatch.setattr(runs, "resume_run", fake)
    cli(
        "train",
        "hihello",
        "--lr",
        "0.5",
        "--steps",
        "7",
        "--cell",
        "gru",
        "--lines",
        "--out",
        tmp_path / "x.pt",
    )
    args, kwargs = calls.pop()
    assert args == (
        Source(text="hihello", kind="text"),
        ModelConfig(cell="gru"),  # the vocabulary size: once the text is read
        TrainConfig(lr=0.5, steps=7, lines=True),
        str(tmp_path / "x.pt"),  # as typed: `DIR/` keeps its slash (checkpoint.output_path)
    )
    assert kwargs.pop("since") <= time.perf_counter()  # --max-time counts from the process's start
    assert kwargs == {"init_from": None, "extend_vocab": False, "command": ["charnext", *sys.argv[1:]],
                      "given": {"cell", "lr", "steps", "lines"},  # the rest is planned
                      "force": False}  # fmt: skip
    cli("train", "--resume", tmp_path / "r.pt", "--lr", "0.5", "--hidden-size", "64", "--max-time", "1m")
    args, kwargs = calls.pop()
    assert args == (tmp_path / "r.pt", None)
    assert kwargs.pop("since") <= time.perf_counter()
    assert kwargs == {"out": None, "command": ["charnext", *sys.argv[1:]], "force": False, "lr": 0.5,
                      "hidden_size": 64, "max_time": 60.0}  # fmt: skip


def test_prepare_hands_the_core_exactly_its_arguments(monkeypatch, tmp_path):
    import charnext.text.prepare

    calls = []

    def fake(*args, **kwargs):
        calls.append((args, kwargs))
        raise ConfigError("stop")

    monkeypatch.setattr(charnext.text.prepare, "prepare", fake)
    cli("prepare", "--file", tmp_path / "a.txt", "--out", tmp_path / "d")
    (args, kwargs) = calls.pop()
    assert args == (tmp_path / "a.txt", tmp_path / "d") and set(kwargs) == {"on_progress", "force"}


# -- checkpoints that tell the truth ---------------------------------------------------------


def test_a_new_run_removes_the_best_checkpoint_of_an_earlier_one(poem, tmp_path):
    out = tmp_path / "s.pt"
    api.train(poem, out, steps=4, seq_len=16, batch_size=4, val_fraction=0.2, eval_every=2, **SMALL)
    assert best_path(out).exists()
    result = api.train("hihello hihello", out, steps=3, **SMALL)  # no validation: no best of its own
    assert not best_path(out).exists() and result.best_checkpoint is None
    assert result.checkpoint == out


def test_json_names_only_files_that_exist(run_pt, tmp_path):
    result = cli("train", "--resume", run_pt, "--out", tmp_path / "r2.pt", "--json")  # no further steps
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["checkpoint"] == str(tmp_path / "r2.pt")
    assert summary["best_checkpoint"] is None and not (tmp_path / "r2.best.pt").exists()


def test_both_checkpoints_carry_the_same_summary_fields(run_pt):
    latest, best = ckpt.load_raw(run_pt), ckpt.load_raw(best_path(run_pt))
    assert latest["summary"].keys() == best["summary"].keys()
    assert best["summary"]["accuracy"] is not None
    shown = cli("inspect", best_path(run_pt))
    assert "accuracy      -" not in shown.stdout


def test_checkpoints_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        api.train("hihello", tmp_path / "u.pt", steps=2, **SMALL)
    finally:
        os.umask(old)
    assert (tmp_path / "u.pt").stat().st_mode & 0o777 == 0o640


# -- metrics log and provenance ------------------------------------------------------------------


def test_metrics_log_and_provenance(run_pt, poem_file):
    log = run_pt.with_name("run.metrics.jsonl")
    records = read_metrics(log)
    steps = [r for r in records if r["kind"] == "step"]
    vals = [r for r in records if r["kind"] == "validation"]
    raw = ckpt.load_raw(run_pt)
    assert [r["step"] for r in steps] == list(range(1, 7))
    assert [r["loss"] for r in steps] == raw["history"]["loss"]
    assert [r["step"] for r in vals] == raw["history"]["val_step"] == [3, 6]
    p = raw["provenance"]
    assert p["command"] == ["charnext", *sys.argv[1:]]  # as typed (CliRunner leaves sys.argv as is)
    assert p["source"] == {"kind": "file", "path": str(poem_file.resolve())}
    assert p["batch_size"] == 4 and p["seq_len"] == 16 and p["schedule"]["total_steps"] == 6
    assert p["torch"] == torch.__version__ and p["python"] and p["platform"]
    assert raw["train_config"]["batch_size"] == 4  # as used, not None
    info = json.loads(cli("inspect", run_pt, "--json").stdout)
    assert info["metrics_log"]["steps"] == 6 and len(info["metrics_log"]["validations"]) == 2
    shown = cli("inspect", run_pt).stdout
    words = " ".join(shown.split())  # the row may wrap between words; a long path is shortened
    row = r"metrics log \S*run\.metrics\.jsonl \(6 steps, 2 validations\)"
    assert "provenance" in shown and re.search(row, words), shown
    # resumed: the lines up to the checkpoint's step are kept, the new ones appended
    assert cli("train", "--resume", run_pt, "--steps", "8").exit_code == 0
    assert [r["step"] for r in read_metrics(log) if r["kind"] == "step"] == list(range(1, 9))


def test_a_failed_run_leaves_the_earlier_log_alone(run_pt, poem_file):
    log = run_pt.with_name("run.metrics.jsonl")
    before = log.read_text()
    assert cli("train", "--file", poem_file, "--out", run_pt, "--lr", "1e6", *SMALL_CLI).exit_code == 3
    assert log.read_text() == before


def test_sample_prompt_and_temperature(poem, names, tmp_path):
    config = TrainConfig(steps=4, eval_every=2, val_fraction=0.2, sample_prompt="What", sample_temperature=0)
    trainer = new_run(poem, None, config, None, **SMALL)
    samples = [e for e in trainer.run() if isinstance(e, EvalEvent)]
    assert samples and all(e.prompt == "What" for e in samples)
    with pytest.raises(UnknownCharactersError, match="sample-prompt"):
        new_run(poem, None, TrainConfig(sample_prompt="Zzz"), None, **SMALL)
    # line mode: the table shows a training line as target; previews are sampled, seeded
    config = TrainConfig(lines=True, steps=6, eval_every=3, batch_size=8)
    a = list(new_run(names, None, config, None, **SMALL).run())
    b = list(new_run(names, None, config, None, **SMALL).run())
    rows = [e for e in a if isinstance(e, RowEvent)]
    assert rows and all(e.target.endswith("\n") and len(e.target) > 1 for e in rows)
    assert [e.sample for e in a if isinstance(e, EvalEvent)] == [
        e.sample for e in b if isinstance(e, EvalEvent)
    ]


# -- pipes and threads -------------------------------------------------------------------------


def run_with_closed_stdout(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`charnext ARGS` whose standard output is a pipe nobody reads any more (as `| head` ends)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "charnext", *args], stdout=write, stderr=subprocess.PIPE, text=True,
            cwd=cwd, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
    finally:
        os.close(write)


def test_inspect_into_a_closed_pipe_exits_0(run_pt, tmp_path):
    proc = run_with_closed_stdout("inspect", str(run_pt), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_training_into_a_closed_pipe_keeps_training_and_saving(poem_file, tmp_path):
    proc = run_with_closed_stdout(
        "train", "--file", str(poem_file), "--out", "c.pt", "--steps", "30", "--eval-every", "5",
        "--seq-len", "16", "--batch-size", "4", "--val-fraction", "0.2", *SMALL_CLI, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert ckpt.load_raw(tmp_path / "c.pt")["step"] == 30


def test_threads(monkeypatch):
    threads = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert configure_threads() == torch.get_num_threads()  # the user's setting stands
        with pytest.raises(ConfigError, match="threads"):
            configure_threads(0)
    finally:
        torch.set_num_threads(threads)
    idle = idle_cpus(0.05)
    assert idle is None or 0.0 <= idle <= len(os.sched_getaffinity(0)) + 0.01
    sample = IdleSample()  # a window opened earlier (as while torch imports), read later
    sum(i * i for i in range(200_000))  # this process's own work counts as idle
    idle = sample.idle(0.01)
    assert idle is None or 0.0 <= idle <= len(os.sched_getaffinity(0))
    assert configure_threads(None, sample) >= 1


def test_text_errors_still_name_the_text(run_pt, tmp_path):
    with pytest.raises(TextError, match="init-from"):
        runs.resume_run(run_pt, "another text entirely", out=tmp_path / "o.pt")


def test_the_rule_itself():
    from charnext.training.divergence import RISE, DivergenceGuard

    guard = DivergenceGuard(vocab_size=20)
    untrained = math.log(20)
    for step in range(1, 200):  # a healthy run: down to 1.0 nats/char
        guard.check(step, max(1.0, untrained - step * 0.02), 0.01)
    guard.check(200, 1.0 + RISE * untrained, 0.01)  # one bad step is smoothed away
    with pytest.raises(TrainingDiverged, match="step 2.*lower --lr than 0.01"):
        for step in range(201, 260):
            guard.check(step, 1.0 + 2 * RISE * untrained, 0.01)
    assert guard.check_validation(5, untrained, 0.01)
    assert not guard.check_validation(5, untrained * 1.2, 0.01)  # not saved, the run goes on
    with pytest.raises(TrainingDiverged):
        guard.check_validation(5, math.nan, 0.01)
    nan_guard = DivergenceGuard(vocab_size=20)
    nan_guard.check(1, 3.0, 0.01)
    nan_guard.check(2, math.nan, 0.01)
    nan_guard.check(3, math.nan, 0.01)
    with pytest.raises(TrainingDiverged):
        nan_guard.check(4, math.nan, 0.01)  # three skipped steps in a row


def test_extend_vocab_without_init_from_is_refused(tmp_path):
    line = one_line_error(cli("train", "hihello", "--extend-vocab", "--out", tmp_path / "e.pt"), 2)
    assert "--extend-vocab" in line and "--init-from" in line
