"""Prediction and generation: sampling options, seeds, state carried forward, the CLI's output."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import pytest
from conftest import POEM
from rich.console import Console
from typer.testing import CliRunner

from charnext import api
from charnext.cli.app import app
from charnext.config import SampleConfig
from charnext.rendering import predict_view

runner = CliRunner()
TINY = {"hidden_size": 32, "num_layers": 1, "precision": "fp32", "device": "cpu"}


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def poem_model(tmp_path_factory):
    """A tiny LSTM trained briefly on verse: unsure enough that sampling varies."""
    path = tmp_path_factory.mktemp("predict") / "poem.pt"
    api.train(POEM * 25, out=path, steps=60, lr=0.01, seq_len=64, batch_size=16, **TINY)
    return path


def generated(*args) -> dict:
    result = run("predict", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_same_seed_same_text_different_seeds_differ(poem_model):
    args = ("-c", poem_model, "-p", "Tyger ", "-n", 120, "--temperature", 1.0)
    a = generated(*args, "--seed", 7)["generated"]
    b = generated(*args, "--seed", 7)["generated"]
    c = generated(*args, "--seed", 8)["generated"]
    assert a == b and len(a) == 120
    assert a != c


def _is_greedy(ckpt, prefix: str, text: str) -> bool:
    """Whether each character of `text` is the most likely one after prefix + what came before."""
    steps = api.predict(ckpt, prefix + text).steps
    return all(steps[len(prefix) - 1 + i].predicted == ch for i, ch in enumerate(text))


def test_temperature_zero_is_greedy(poem_model):
    ckpt = api.load(poem_model)
    zero = generated("-c", poem_model, "-p", "Tyger ", "-n", 60, "--temperature", 0)["generated"]
    assert _is_greedy(ckpt, "Tyger ", zero)
    assert zero == generated("-c", poem_model, "-p", "Tyger ", "-n", 60, "--temperature", 0)["generated"]


def test_greedy_with_a_seed_is_warned_about(poem_model):
    result = run("predict", "Tyger ", "-c", poem_model, "-n", 10, "--temperature", 0, "--seed", 3)
    assert result.exit_code == 0, result.output
    assert "--seed has no effect with --temperature 0" in result.stderr


def test_greedy_with_several_samples_is_refused(poem_model):
    result = run("predict", "Tyger ", "-c", poem_model, "-n", 10, "--temperature", 0, "--num-samples", 3)
    assert result.exit_code == 2 and "every sample would be the same" in result.stderr


def test_default_samples_and_names_its_seed(poem_model):
    """Two runs without --seed differ; each names its seed on stderr, which reproduces it."""
    runs = [run("predict", "Tyger ", "-c", poem_model, "-n", 120, "--json") for _ in range(2)]
    assert all(r.exit_code == 0 for r in runs)
    texts = [json.loads(r.stdout)["generated"] for r in runs]
    seeds = [int(re.search(r"^seed (\d+)$", r.stderr, re.M).group(1)) for r in runs]
    assert texts[0] != texts[1] and seeds[0] != seeds[1]
    assert [json.loads(r.stdout)["seed"] for r in runs] == seeds
    again = generated("Tyger ", "-c", poem_model, "-n", 120, "--seed", seeds[1])
    assert again["generated"] == texts[1]
    assert not _is_greedy(api.load(poem_model), "Tyger ", texts[0])


def test_text_prints_only_the_generated_text(poem_model):
    args = ("Tyger ", "-c", poem_model, "-n", 80, "--seed", 5)
    result = run("predict", *args, "--text")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Tyger " + generated(*args)["generated"] + "\n"
    several = run("predict", *args, "--text", "--num-samples", 3)
    assert several.stdout.count("Tyger ") >= 3 and "---" not in several.stdout


def test_table_width_does_not_change_the_sampled_text(poem_model):
    args = ("Tyger ", "-c", poem_model, "-n", 80, "--seed", 5)
    plain = run("predict", *args)
    wide = run("predict", *args, "--alternatives", 6)
    assert "top 3" in plain.stdout and "top 6" in wide.stdout
    assert plain.stdout.splitlines()[-1] == wide.stdout.splitlines()[-1]  # the same sample
    filtered = generated(*args, "--top-k", 3)["generated"]
    assert filtered != generated(*args)["generated"]  # --top-k is the sampling filter only


@pytest.mark.parametrize("option", [("--top-k", 1), ("--top-p", 1e-6)])
def test_top_k_one_and_tiny_top_p_are_greedy(poem_model, option):
    greedy = generated("-c", poem_model, "-p", "Tyger ", "-n", 60, "--temperature", 0)["generated"]
    for seed in (1, 2):
        obj = generated(
            "-c", poem_model, "-p", "Tyger ", "-n", 60, "--temperature", 1.5, "--seed", seed, *option
        )
        assert obj["generated"] == greedy


def test_num_samples_and_length(poem_model):
    obj = generated(
        "-c", poem_model, "-p", "In the", "-n", 25, "--num-samples", 3, "--temperature", 1, "--seed", 0
    )
    assert len(obj["samples"]) == 3 and obj["generated"] == obj["samples"][0]
    assert all(len(s) == 25 for s in obj["samples"])
    assert len(set(obj["samples"])) > 1


def test_samples_in_plain_output(poem_model):
    result = run("predict", "-c", poem_model, "-p", "In", "-n", 20, "--num-samples", 2, "--temperature", 1)
    assert result.exit_code == 0, result.output
    assert "--- sample 1 ---" in result.stdout and "--- sample 2 ---" in result.stdout


def test_api_matches_cli_with_the_same_sampling(poem_model):
    ckpt = api.load(poem_model)
    sample = SampleConfig(temperature=0.8, top_k=5, top_p=0.9, seed=11)
    ours = api.generate(ckpt, "Tyger ", 50, sample)
    cli = generated("-c", poem_model, "-p", "Tyger ", "-n", 50, "--temperature", 0.8, "--top-k", 5,
                    "--top-p", 0.9, "--seed", 11)  # fmt: skip
    assert ours == [cli["generated"]]


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_generation_reads_the_prefix_once(poem_model, engine):
    """The state is carried: the prime, then P prefix characters and L generated ones feed
    P + L - 1 inputs."""
    ckpt = api.load(poem_model, engine=engine)
    fed = []
    model = ckpt.model if engine == "torch" else ckpt.runner
    forward = model.forward

    def counting(idx, state=None):
        fed.append(idx.shape[1])
        return forward(idx, state)

    model.forward = counting
    text = api.generate(ckpt, "Tyger Tyger", 200, SampleConfig(temperature=1.0, seed=0))[0]
    assert len(text) == 200
    prime = ckpt.start.prime  # read first, once, as every reading does (tests/test_start.py)
    assert prime == "\n"  # the poem has newlines, no blank line
    assert fed == [len(prime), len("Tyger Tyger")] + [1] * 199


def test_empty_prefix_generates(poem_model):
    obj = generated("-c", poem_model, "-n", 30, "--temperature", 1, "--seed", 4)
    assert obj["steps"] == [] and len(obj["generated"]) == 30


def test_greedy_continuation_of_hihello(hihello):
    obj = generated("-c", hihello, "-p", "hihell", "-n", 1, "--temperature", 0)
    assert obj["prefix"] == "hihell" and obj["prediction"] == "ihello" and obj["generated"] == "o"


def test_skip_unknown_drops_and_says_which(hihello):
    result = run("predict", "-c", hihello, "-p", "hi there", "--skip-unknown", "--json")
    assert result.exit_code == 0, result.output
    obj = json.loads(result.stdout)
    assert obj["prefix"] == "hihee" and obj["skipped"] == [" ", "t", "r"]
    assert "skipped characters not in the vocabulary: '␣' 't' 'r'" in result.stderr
    plain = run("predict", "-c", hihello, "-p", "hi there", "--skip-unknown")
    assert plain.exit_code == 0 and "per-step prediction" in plain.stdout
    assert "skipped" not in plain.stdout  # the note goes to stderr


def test_unknown_without_skip_is_one_line_error(hihello):
    result = run("predict", "-c", hihello, "-p", "hi there")
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "unknown characters '␣' 't' 'r'" in result.stderr


def test_table_of_generated_steps_is_capped(hihello):
    result = run("predict", "-c", hihello, "-p", "hihell", "-n", 500, "--table")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "per-step prediction" in out and "generated steps" in out
    assert f"the first {500 - predict_view.TABLE_ROWS:,} of 500 steps are not shown" in out
    assert len(out.splitlines()) < 6 + 2 * predict_view.TABLE_ROWS + 30  # prefix, text, one capped table
    assert "\n   506 " in out  # the last generated step keeps its number
    assert max(len(line) for line in out.splitlines() if "hihello" not in line) <= 80


def test_long_prefix_table_is_capped(hihello):
    result = run("predict", "-c", hihello, "-p", "hihello" * 30)
    assert result.exit_code == 0
    assert f"the first {210 - predict_view.TABLE_ROWS} of 210 steps are not shown" in result.stdout


def test_stream_text_prints_each_character():
    buf = io.StringIO()
    con = Console(file=buf, force_terminal=True, width=80, color_system=None)
    assert predict_view.stream_text(con, "hi", iter("hello")) == "hello"
    assert buf.getvalue() == "hihello\n"


def test_json_stdout_is_only_json(hihello):
    result = run("predict", "-c", hihello, "-p", "hihell", "-n", 3, "--json")
    assert result.exit_code == 0
    assert len(result.stdout.strip().splitlines()) == 1
    obj = json.loads(result.stdout)
    assert set(obj) >= {"prefix", "prediction", "steps", "skipped", "generated", "samples"}


def test_line_mode_generation_stops_at_end_of_line(tmp_path, names):
    path = tmp_path / "names.pt"
    api.train(names, out=path, steps=40, lr=0.01, lines=True, batch_size=16, **TINY)
    ckpt = api.load(path)
    out = api.generate(ckpt, "", 40, SampleConfig(temperature=1.0, seed=0), num_samples=4)
    assert len(out) == 4 and all("\n" not in s for s in out)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--temperature", "-1"], "temperature"),
        (["--top-p", "0"], "top-p"),
        (["--top-k", "-1"], "top-k"),
        (["--alternatives", "0"], "alternatives"),
        (["--num-samples", "0"], "num-samples"),
        (["--length", "-3"], "length"),
    ],
)
def test_bad_sampling_options(hihello, args, match):
    result = run("predict", "-c", hihello, "-p", "hi", *args)
    assert result.exit_code == 2 and match in result.stderr
    assert "Traceback" not in result.output


def test_device_cpu_and_unavailable_cuda(hihello):
    assert run("predict", "-c", hihello, "-p", "hi", "--device", "cpu").exit_code == 0
    import torch

    if not torch.cuda.is_available():
        result = run("predict", "-c", hihello, "-p", "hi", "--device", "cuda")
        assert result.exit_code == 1 and "CUDA" in result.stderr


def test_predict_imports_no_training_machinery(hihello):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "charnext", "predict", "-p", "hihell", "-c", str(hihello)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    for module in ("torch", "torch._dynamo", "charnext.training.trainer", "matplotlib"):
        assert module not in imported, module


def test_inspect_imports_no_torch(hihello):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "charnext", "inspect", str(hihello)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "torch" not in imported and "numpy" in imported


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_engine_option_gives_the_same_output(hihello, engine):
    auto = generated("-c", hihello, "-p", "hihell", "-n", 12, "--seed", 5)
    chosen = generated("-c", hihello, "-p", "hihell", "-n", 12, "--seed", 5, "--engine", engine)
    assert (chosen["prediction"], chosen["samples"]) == (auto["prediction"], auto["samples"])
    for a, b in zip(auto["steps"], chosen["steps"]):
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)
    inspect = run("inspect", hihello, "--engine", engine, "--json")
    assert inspect.exit_code == 0 and json.loads(inspect.stdout)["model"]["parameters"] > 0


def test_engine_numpy_refuses_a_gpu(hihello):
    result = run("predict", "-c", hihello, "-p", "hi", "--engine", "numpy", "--device", "cuda")
    assert result.exit_code == 1 and "error:" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_export_command(hihello, tmp_path):
    out = tmp_path / "hi.safetensors"
    result = run("export", hihello, "--out", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout and out.exists()
    same = ("-p", "hihell", "-n", 5, "--seed", 1)
    assert generated("-c", out, *same) == generated("-c", hihello, *same)
    shown = run("inspect", out)
    assert shown.exit_code == 0 and "inference-only (charnext export)" in shown.stdout
    missing = run("export", tmp_path / "nope.pt", "--out", out)
    assert missing.exit_code == 1 and "no such checkpoint" in missing.stderr


# --- a prompt from anywhere; a line model completes its lines --------------------------------


@pytest.fixture(scope="module")
def names_model(tmp_path_factory):
    base = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail"]
    path = tmp_path_factory.mktemp("names") / "names.pt"
    api.train("\n".join(base * 12) + "\n", out=path, steps=40, lr=0.01, lines=True, batch_size=16, **TINY)
    return path


def test_a_prompt_from_standard_input_or_a_file_reads_as_the_shell_gives_it(poem_model, tmp_path):
    """`predict - < p.txt` and `--prefix-file p.txt` equal `predict "$(cat p.txt)"`: the shell's
    $(...) drops the final newlines, and so do they."""
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("The rose is\nred and the", encoding="utf-8")
    prompt.write_bytes(prompt.read_bytes() + b"\n\n")
    as_the_shell = subprocess.run(
        ["sh", "-c", f'printf %s "$(cat "{prompt}")"'], capture_output=True, text=True
    )
    literal = generated(as_the_shell.stdout, "-c", poem_model, "-n", 30, "--seed", 4)
    assert literal["prefix"] == "The rose is\nred and the"
    with prompt.open("rb") as f:
        piped = run("predict", "-", "-c", poem_model, "-n", 30, "--seed", 4, "--json", input=f.read())
    assert piped.exit_code == 0, piped.output
    from_file = generated("--prefix-file", prompt, "-c", poem_model, "-n", 30, "--seed", 4)
    assert json.loads(piped.stdout) == literal == from_file
    both = run("predict", "The", "--prefix-file", prompt, "-c", poem_model)
    assert both.exit_code == 2 and "give one of PREFIX, --prefix and --prefix-file" in both.output
    missing = run("predict", "--prefix-file", tmp_path / "nope.txt", "-c", poem_model)
    assert missing.exit_code == 1 and "no such file" in missing.output and "Traceback" not in missing.output


def test_a_line_model_completes_its_lines_without_a_length(names_model, poem_model):
    """`predict em --num-samples 5` on a line model completes 5 lines; a stream model, which has
    no line's end to stop at, says that --length is missing, before it shows anything."""
    r = run("predict", "em", "-c", names_model, "--num-samples", 5, "--seed", 1, "--text")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 5 and all(line.startswith("em") and len(line) > 2 for line in lines)
    drawn = api.complete(
        api.load(names_model),
        prefix="em",
        length=None,
        num_samples=5,
        sample=SampleConfig(temperature=1.0, seed=1),
    )
    assert lines == ["em" + s for s in drawn.samples]
    stream = run("predict", "The", "-c", poem_model, "--num-samples", 3)
    assert stream.exit_code == 2 and "--length is needed" in stream.output
    assert "per-step" not in stream.output


def test_a_line_models_table_starts_with_its_start(names_model):
    """A line model's first prediction is made after the newline a line is read after, before
    the prefix's first character: row 0 of the table (↵), and `start` in the JSON."""
    r = run("predict", "em", "-c", names_model)
    assert r.exit_code == 0, r.output
    rows = [line.split() for line in r.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [row[:2] for row in rows] == [["0", "↵"], ["1", "e"], ["2", "m"]]
    data = generated("em", "-c", names_model)
    ckpt = api.load(names_model)
    after_newline = api.predict(ckpt, "e").start
    assert data["start"]["input"] == "\n" and data["start"]["predicted"] == after_newline.predicted
    assert abs(data["start"]["probability"] - after_newline.probability) < 1e-9
    assert [s["input"] for s in data["steps"]] == ["e", "m"]


def test_several_samples_of_several_lines_are_set_apart(poem_model):
    """`--text --num-samples 3`: samples that run over several lines are set off by an empty line."""
    r = run("predict", "The", "-c", poem_model, "-n", 120, "--num-samples", 3, "--seed", 2, "--text",
            "--temperature", 1.5)  # fmt: skip
    assert r.exit_code == 0, r.output
    drawn = api.complete(api.load(poem_model), prefix="The", length=120, num_samples=3,
                         sample=SampleConfig(temperature=1.5, seed=2)).samples  # fmt: skip
    assert any("\n" in s.rstrip("\n") for s in drawn)
    parts = [("The" + s).rstrip("\n") + "\n" for s in drawn]
    assert r.stdout == "\n".join(parts)
