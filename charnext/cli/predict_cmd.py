"""`charnext predict`: options, the API's prediction and continuation, the view."""

from __future__ import annotations

from pathlib import Path

from charnext.cli import options
from charnext.cli.common import file_note, finish, handle_errors, random_seed, usage
from charnext.config import DeviceName, Engine


@handle_errors
def predict(
    prefix: options.Prefix = None,
    prefix_option: options.PrefixOption = None,
    prefix_file: options.PrefixFile = None,
    checkpoint: options.CheckpointPath = Path("checkpoint.pt"),
    length: options.PredictLength = None,
    temperature: options.Temperature = 1.0,
    top_k: options.TopK = 0,
    top_p: options.TopP = 1.0,
    seed: options.PredictSeed = None,
    num_samples: options.NumSamples = 1,
    alternatives: options.Alternatives = 3,
    stop: options.Stop = None,
    best_of: options.BestOf = None,
    table: options.GeneratedTable = False,
    text_only: options.TextOnly = False,
    skip_unknown: options.SkipUnknown = False,
    device: options.Device = DeviceName.cpu,
    engine: options.EngineChoice = Engine.auto,
    json_out: options.Json = False,
) -> None:
    """Show the model's most likely next character after each character of PREFIX, and continue it.

    The table is the argmax view of the lecture (␣ is a space, ↵ a newline); --length N then
    samples N characters past the prefix (--temperature 0: greedy).
    """
    from charnext import api
    from charnext.rendering import console, predict_view

    text = _prefix_of(prefix, prefix_option, prefix_file)
    if length is None:  # what a line model completes by itself: its line
        length = None if num_samples > 1 or text_only or best_of or stop else 0
    _check_predict(length, text_only, json_out)
    sample = _sample_for(temperature, top_k, top_p, seed, length != 0)
    request = api.PredictRequest(
        prefix=text, length=length, sample=sample,
        num_samples=num_samples, alternatives=alternatives, skip_unknown=skip_unknown,
        generated_steps=table and not text_only and not json_out, stop=tuple(stop or ()), best_of=best_of,
    )  # fmt: skip
    ckpt = api.load(checkpoint, device.value, engine.value)
    con = console.console(stderr=json_out)
    seed_note = sample.seed if length != 0 and sample.temperature else None
    view = predict_view.PredictView(con, alternatives, table=not (json_out or text_only), seed_note=seed_note)
    streaming = con.is_terminal and not json_out  # on a terminal each character shows as it comes
    result = api.complete(ckpt, request, view.prefix_read, view.char if streaming else None)
    finish(result, json_out, lambda: view.finish(result, text_only))


def _prefix_of(prefix: str | None, prefix_option: str | None, prefix_file: Path | None) -> str:
    """The prefix: PREFIX or --prefix (- reads standard input), or --prefix-file's text, whose
    final newlines are dropped as the shell's "$(cat FILE)" drops them (an editor ends a file
    with one): `predict --prefix-file p.txt` and `predict - < p.txt` read as `predict "$(cat p.txt)"`."""
    from charnext.api import Source

    given = [p for p in (prefix, prefix_option, prefix_file) if p is not None]
    if len(given) > 1:
        raise usage("give one of PREFIX, --prefix and --prefix-file")
    if prefix_file is None and given != ["-"]:
        if given:
            file_note(given[0], "--prefix-file", "to read")
        return given[0] if given else ""
    source = Source.stdin() if prefix_file is None or str(prefix_file) == "-" else Source.file(prefix_file)
    return source.text.rstrip("\n")


def _check_predict(length: int | None, text_only: bool, json_out: bool) -> None:
    """predict's options that exclude each other (their values: PredictRequest, before anything
    loads)."""
    if text_only and json_out:
        raise usage("--text and --json exclude each other")
    if text_only and length == 0:
        raise usage("--text prints generated text: give --length N")


def _sample_for(temperature: float, top_k: int, top_p: float, seed: int | None, draws: bool):
    """How predict samples: without --seed, a fresh seed (printed, to make a good sample again);
    greedy needs none."""
    from charnext.config import SampleConfig
    from charnext.rendering.console import error_console

    greedy = temperature == 0
    if greedy and seed is not None:
        error_console().print("note: --seed has no effect with --temperature 0 (greedy)", markup=False)
    if draws and not greedy and seed is None:
        seed = random_seed()
    return SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)  # checks values
