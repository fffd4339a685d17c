"""`charnext predict`: options, the API's prediction and continuation, the view."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charnext.cli import options
from charnext.cli.common import handle_errors, print_json, random_seed, usage, warn_skipped
from charnext.config import DeviceName, Engine
from charnext.errors import ConfigError


@handle_errors
def predict(
    prefix_arg: Annotated[
        str | None,
        typer.Argument(metavar="PREFIX", help="Text to feed, one character at a time.", show_default=False),
    ] = None,
    prefix: Annotated[
        str | None, typer.Option("--prefix", "-p", help="The same as PREFIX.", show_default=False)
    ] = None,
    checkpoint: options.Checkpoint = Path("checkpoint.pt"),
    length: Annotated[
        int, typer.Option("--length", "-n", help="Characters to generate past the prefix.")
    ] = 0,
    temperature: options.Temperature = 1.0,
    top_k: options.TopK = 0,
    top_p: options.TopP = 1.0,
    seed: options.PredictSeed = None,
    num_samples: Annotated[int, typer.Option(help="Continuations to generate.")] = 1,
    alternatives: options.Alternatives = 3,
    table: Annotated[
        bool, typer.Option("--table", help="Also tabulate the generated steps (the last 60).")
    ] = False,
    text_only: Annotated[
        bool,
        typer.Option("--text", help="Print only the generated text (prefix and continuation) on stdout."),
    ] = False,
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
    from charnext.rendering import (
        console,
        predict_view,
    )

    if prefix_arg is not None and prefix is not None:
        raise usage("give PREFIX or --prefix, not both")
    _check_predict(length, num_samples, alternatives, text_only, json_out)
    sample = _sample_for(temperature, top_k, top_p, seed, length, num_samples)
    ckpt = api.load(checkpoint, device.value, engine.value)
    prefix = prefix_arg if prefix_arg is not None else prefix or ""
    result = api.predict(ckpt, prefix, alternatives, skip_unknown)
    if result.skipped:
        warn_skipped(result.skipped)
    if not result.steps and not length:
        raise usage("give PREFIX to predict, or --length N to generate")
    if length and sample.temperature:  # stderr, so that stdout keeps only the output
        console.error_console().print(f"seed {sample.seed}", markup=False, highlight=False)
    con = console.console(stderr=json_out)
    if result.steps and not json_out and not text_only:
        predict_view.show_prediction(con, result.steps, result.prediction, alternatives)
    _continue(con, ckpt, result, length, sample, num_samples, alternatives, table, text_only, json_out)


def _continue(
    con, ckpt, result, length, sample, num_samples, alternatives, table, text_only, json_out
) -> None:
    """predict past the prefix: the continuations, streamed on a terminal, listed (with whether
    each line is new, in line mode), tabulated with --table, or as JSON."""
    from charnext import api
    from charnext.rendering import (
        predict_view,
    )

    line_mode = api.line_mode(ckpt)
    stream = length and not json_out and num_samples == 1 and con.is_terminal and not line_mode
    kept, generated = result.prefix, []
    if stream:  # one continuation on a terminal: each character printed the moment it comes
        chars = (step[0] for step in api.generate_stream(ckpt, kept, length, sample=sample))
        generated = [predict_view.stream_text(con, kept, chars)]
    elif length:
        generated = api.generate(ckpt, kept, length, sample=sample, num_samples=num_samples)
    seen = [api.seen_in_training(ckpt, kept + g) for g in generated] if line_mode else None
    if json_out:
        print_json(api.Completion(result, generated, sample.seed, seen).to_dict())
        return
    if generated and not stream:
        if text_only:
            predict_view.plain_samples(con, kept, generated)
        else:
            predict_view.samples(con, kept, generated, seen)
    if table and generated and not text_only:
        steps = api.predict(ckpt, kept + generated[0], alternatives).steps[len(kept) :]
        start = len(kept) + 1
        con.print(
            predict_view.prediction_table(
                steps, alternatives, "generated steps", start=start, width=con.width
            )
        )


def _check_predict(length: int, num_samples: int, alternatives: int, text_only: bool, json_out: bool) -> None:
    """predict's options that exclude each other or are out of range."""
    if alternatives < 1:
        raise ConfigError(f"--alternatives must be at least 1, not {alternatives}")
    if length < 0 or num_samples < 1:
        raise ConfigError("--length must be 0 or more and --num-samples at least 1")
    if text_only and json_out:
        raise usage("--text and --json exclude each other")
    if text_only and not length:
        raise usage("--text prints generated text: give --length N")


def _sample_for(
    temperature: float, top_k: int, top_p: float, seed: int | None, length: int, num_samples: int
):
    """How predict samples: without --seed, a fresh seed (printed, to make a good sample again);
    greedy needs none."""
    from charnext.config import SampleConfig
    from charnext.rendering.console import error_console

    greedy = temperature == 0
    if greedy and num_samples > 1 and length:
        raise usage("--temperature 0 is greedy: every sample would be the same; drop --num-samples")
    if greedy and seed is not None:
        error_console().print("note: --seed has no effect with --temperature 0 (greedy)", markup=False)
    if length and not greedy and seed is None:
        seed = random_seed()
    return SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)  # checks values
