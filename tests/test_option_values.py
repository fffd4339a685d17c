"""Every option that takes a value refuses a bad one: exit 2, one line naming the option, and
before anything loads. The options are read from the Typer app itself, so a new one is covered
(or fails here until it says what a bad value of it is)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from charnext.cli.app import app

runner = CliRunner()
MISSING = "no-such-checkpoint.pt"  # a check after loading would fail on this file first (exit 1)

# what each command is given besides the bad value: enough to get past "give the text"
BASE = {
    "train": ["hihello"],
    "predict": ["hi", "-c", MISSING],
    "evaluate": ["hi", "-c", MISSING],
    "neurons": ["hi", "-c", MISSING],
    "report": ["-c", MISSING],
    "play": ["-c", MISSING],
    "page": ["-c", MISSING],
    "serve": ["-c", MISSING],
}
NUMBER_BAD = ["-5", "nan"]  # no count, length, rate or probability of ours is negative or NaN
TEXT_BAD = {  # text options that have a form, and a value outside it
    "max_time": ["soon", "-5s", "0"],
    "dist_timeout": ["soon", "0s"],
    "unit": ["seven", "1-2"],
    "stop": [""],
    "host": ["0.0.0.0"],  # reachable from other machines, with no --api-key
}
FREE_TEXT = {"prefix", "prefix_option", "sample_prompt", "out", "name", "api_key"}  # any text is a value


def _value_options():
    """(command, option name, its flag, its kind) for every option that takes a number or a text."""
    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        for p in command.params:
            if p.param_type_name != "option" or p.is_flag:
                continue
            kind = p.type.name
            if kind in ("integer", "float", "text", "int", "str"):
                yield name, p.name, max(p.opts, key=len), kind


OPTIONS = sorted(_value_options())
CASES = [
    (command, name, flag, bad)
    for command, name, flag, kind in OPTIONS
    if name not in FREE_TEXT
    for bad in (TEXT_BAD.get(name, [None]) if kind in ("text", "str") else NUMBER_BAD)
]


def test_every_value_option_is_covered():
    """A text option is either free text or has bad values here; each command has its base."""
    assert OPTIONS, "no options found: has the app changed shape?"
    for command, name, _, kind in OPTIONS:
        assert command in BASE, f"{command}: add its base arguments to BASE"
        if kind in ("text", "str"):
            assert name in FREE_TEXT or name in TEXT_BAD, f"{command} {name}: say what a bad value is"


IDS = [f"{c}-{f}={b}" for c, _, f, b in CASES]


@pytest.mark.parametrize(("command", "name", "flag", "bad"), CASES, ids=IDS)
def test_a_bad_value_exits_2_in_one_line_before_loading(command, name, flag, bad):
    assert bad is not None
    result = runner.invoke(app, [command, *BASE[command], f"{flag}={bad}"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert flag in lines[0], lines[0]  # the option as the user typed it, not the API's name
    assert "loading" not in result.stdout  # refused before the slow part began
    assert "Traceback" not in result.output


def test_report_names_alternatives():
    result = runner.invoke(app, ["report", "-c", MISSING, "--alternatives", "0"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --alternatives must be at least 1, not 0"


def test_the_api_names_its_own_words():
    """The core's message names the request's field; the command line names the option."""
    from charnext import api
    from charnext.errors import InvalidValue

    with pytest.raises(InvalidValue) as e:
        api.PredictRequest("hi", num_samples=0)
    assert e.value.param == "num_samples" and str(e.value) == "num_samples must be at least 1, not 0"
    result = runner.invoke(app, ["predict", "hi", "-c", MISSING, "--num-samples", "0"])
    assert result.stderr.strip() == "error: --num-samples must be at least 1, not 0"
