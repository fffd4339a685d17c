"""How the command line reads its arguments: what each command hands the core, exactly (as
fastapi-cli's tests do), `-h`, usage errors, case-insensitive choices, complete help texts and
shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import typer
from typer.testing import CliRunner

from charnext import api
from charnext.cli.app import app
from charnext.config import SampleConfig
from charnext.inference.steps import StepPrediction

runner = CliRunner()
TINY = ["--hidden-size", "16", "--num-layers", "1", "--steps", "3", "--precision", "fp32", "--device", "cpu"]


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def _fake_checkpoint():
    return SimpleNamespace(train_config={}, raw={}, line_mode=False)


def _steps(prefix: str) -> list[StepPrediction]:
    return [StepPrediction(c, "x", 0.5, [("x", 0.5)], prefix[i + 1] if i + 1 < len(prefix) else None)
            for i, c in enumerate(prefix)]  # fmt: skip


# --- the arguments each command hands the core --------------------------------------------------


def _completing(prefix: str, samples: list[str]):
    """A stand-in for `api.complete` that reads `prefix` and returns `samples`, as the real one
    does: the prediction to `on_prefix` first."""

    def complete(ckpt, request, on_prefix=None, on_char=None):
        prediction = api.PredictResult(_steps(prefix))
        if on_prefix is not None:
            on_prefix(prediction)
        return api.Completion(prediction, samples, request.sample.seed if request.sample else None)

    return complete


def test_predict_hands_the_core_every_option():
    ckpt = _fake_checkpoint()
    with (
        mock.patch.object(api, "load", return_value=ckpt) as load,
        mock.patch.object(api, "complete", side_effect=_completing("hihell", ["abc", "def"])) as complete,
    ):
        result = run("predict", "hihell", "-c", "m.pt", "-n", 5, "--temperature", 0.7, "--top-k", 4,
                     "--top-p", 0.9, "--seed", 3, "--num-samples", 2, "--alternatives", 5,
                     "--skip-unknown", "--device", "CPU", "--engine", "torch")  # fmt: skip
    assert result.exit_code == 0, result.output
    load.assert_called_once_with(Path("m.pt"), "cpu", "torch")
    assert complete.call_args.args[:2] == (ckpt, api.PredictRequest(
        prefix="hihell", length=5, sample=SampleConfig(temperature=0.7, top_k=4, top_p=0.9, seed=3),
        num_samples=2, alternatives=5, skip_unknown=True,
    ))  # fmt: skip
    assert "hihellabc" in result.stdout and "hihelldef" in result.stdout


def test_predict_defaults_sample_at_temperature_one_with_a_printed_seed():
    ckpt = _fake_checkpoint()
    with (
        mock.patch.object(api, "load", return_value=ckpt) as load,
        mock.patch.object(api, "complete", side_effect=_completing("ab", ["cd"])) as complete,
    ):
        result = run("predict", "--prefix", "ab", "-n", 2)
    assert result.exit_code == 0, result.output
    load.assert_called_once_with(Path("checkpoint.pt"), "cpu", "auto")
    request = complete.call_args.args[1]
    seed = request.sample.seed
    assert isinstance(seed, int)
    assert request == api.PredictRequest(
        prefix="ab", length=2, sample=SampleConfig(temperature=1.0, top_k=0, top_p=1.0, seed=seed)
    )
    assert f"seed {seed}" in result.stderr and "seed" not in result.stdout


def test_evaluate_hands_the_core_the_text(tmp_path):
    ckpt = _fake_checkpoint()
    scored = api.EvaluateReport(api.Evaluation(1.0, 0.5, 6))
    path = tmp_path / "t.txt"
    path.write_text("from a file", encoding="utf-8")
    for args, text, skip in (
        (["hihello"], "hihello", False),
        (["--file", path, "--skip-unknown"], "from a file", True),
        (["-"], "from stdin", False),
    ):
        with (
            mock.patch.object(api, "load", return_value=ckpt) as load,
            mock.patch.object(api, "score", return_value=scored) as score,
        ):
            result = run("evaluate", *args, "-c", "m.pt", "--device", "cpu", "--json", input="from stdin")
        assert result.exit_code == 0, result.output
        load.assert_called_once_with(Path("m.pt"), "cpu")
        score.assert_called_once_with(ckpt, api.EvaluateRequest(text, skip_unknown=skip))
        assert json.loads(result.stdout)["loss"] == 1.0


def test_evaluate_show_hands_the_core_its_stretch():
    ckpt = _fake_checkpoint()
    view = mock.Mock()
    view.to_dict.return_value = {"offset": 2}
    with (
        mock.patch.object(api, "load", return_value=ckpt),
        mock.patch.object(
            api, "score", return_value=api.EvaluateReport(api.Evaluation(1.0, 0.5, 6), view, 3)
        ) as score,
    ):
        result = run("evaluate", "hihello", "--show", "--offset", 2, "--show-chars", 4, "--most", 3, "--json")
    assert result.exit_code == 0, result.output
    request = api.EvaluateRequest("hihello", show=True, offset=2, show_chars=4, most=3)
    score.assert_called_once_with(ckpt, request)
    view.to_dict.assert_called_once_with(3)
    assert json.loads(result.stdout)["surprise"] == {"offset": 2}


@pytest.mark.parametrize("args", [["x.pt"], ["-c", "x.pt"], ["--checkpoint", "x.pt"]])
def test_inspect_hands_the_core_the_checkpoint(args):
    ckpt = _fake_checkpoint()
    info = {"model": {}, "note": "described"}
    with (
        mock.patch.object(api, "load", return_value=ckpt) as load,
        mock.patch("charnext.storage.describe.describe", return_value=info) as describe,
        mock.patch("charnext.rendering.plot.plot_history") as plot,
    ):
        result = run("inspect", *args, "--plot", "loss.png", "--json", "--engine", "torch")
    assert result.exit_code == 0, result.output
    load.assert_called_once_with(Path("x.pt"), engine="torch")
    describe.assert_called_once_with(ckpt)
    plot.assert_called_once_with(info, Path("loss.png"))
    assert json.loads(result.stdout) == info


def test_inspect_default_checkpoint():
    with (
        mock.patch.object(api, "load", return_value=_fake_checkpoint()) as load,
        mock.patch("charnext.storage.describe.describe", return_value={}),
    ):
        assert run("inspect", "--json").exit_code == 0
    load.assert_called_once_with(Path("checkpoint.pt"), engine="auto")


# --- one argument style ------------------------------------------------------------------------


def _commands() -> list[str]:
    return sorted(typer.main.get_command(app).commands)


def test_dash_h_on_every_command():
    assert {"train", "predict", "evaluate", "inspect", "prepare"} <= set(_commands())
    for args in ([], *([name] for name in _commands())):
        result = run(*args, "-h")
        assert result.exit_code == 0, (args, result.output)
        assert result.stdout.startswith("Usage: ") and "-h, --help" in result.stdout, args


def test_help_texts_are_whole():
    """Click cuts a command's description at the terminal's width with "..."; ours wrap."""
    listing = " ".join(run("--help").stdout.split("Commands:")[1].split())
    assert "..." not in listing
    for name, cmd in typer.main.get_command(app).commands.items():
        first = " ".join(cmd.help.split("\n\n")[0].split())
        assert first.split(". ")[0] in listing, name


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "hi", "--prefix", "hi"],
        ["predict", "hi", "-n", 5, "--text", "--json"],
        ["predict", "hi", "-n", 0, "--text"],
        ["predict", "hi", "-n", 5, "--temperature", 0, "--num-samples", 2],
        ["evaluate"],
        ["evaluate", "hihello", "--file", "x.txt"],
        ["inspect", "a.pt", "-c", "b.pt"],
        ["train"],
        ["train", "hihello", "--cell", "transformer"],
        ["predict", "hi", "--no-such-option"],
    ],
)
def test_usage_errors_exit_2(args, tmp_path):
    result = run(*args)
    assert result.exit_code == 2, (args, result.output)
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_choices_are_case_insensitive(tmp_path):
    path = tmp_path / "rnn.pt"
    result = run("train", "hihello", "--cell", "RNN", "--out", path, *TINY[:-2], "--device", "CPU")
    assert result.exit_code == 0, result.output
    assert api.load(path).config.cell.value == "rnn"
    assert run("predict", "hi", "-c", path, "--device", "Cpu").exit_code == 0


# --- shell completion -----------------------------------------------------------------------------


def test_completion_options_are_offered():
    out = run("--help").stdout
    assert "--install-completion" in out and "--show-completion" in out


# Typer guesses the shell from the processes above this one unless told not to; the tests name
# the shell instead, so that they pass whatever started pytest (a terminal, CI, a background job).
NO_DETECTION = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}


def test_show_completion_prints_a_script():
    env = {**os.environ, "SHELL": "/bin/bash", **NO_DETECTION}
    command = [sys.executable, "-m", "charnext", "--show-completion", "bash"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "_CHARNEXT_COMPLETE" in proc.stdout and "complete" in proc.stdout


@pytest.mark.parametrize(
    ("words", "expected"),
    [("charnext pre", {"predict", "prepare"}), ("charnext train --cell ", {"rnn", "gru", "lstm"})],
)
def test_completion_completes_commands_and_choices(words, expected):
    env = {**os.environ, "_CHARNEXT_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split(" ")) - 1)}  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "charnext"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert set(proc.stdout.split()) >= expected, proc.stdout


def test_install_completion_writes_the_script_for_the_shell(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "SHELL": "/bin/bash", **NO_DETECTION}
    command = [sys.executable, "-m", "charnext", "--install-completion", "bash"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    script = tmp_path / ".bash_completions" / "charnext.sh"
    assert "_CHARNEXT_COMPLETE" in script.read_text()
    assert str(script) in (tmp_path / ".bashrc").read_text()
