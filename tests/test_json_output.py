"""Every command's `--json` output, field by field as it was before the results learned to write
their own JSON (tests/data/json_fields.json was recorded from charnext 51ca8e0 with the same
commands), and produced by the API result's `to_dict()`, so that the view and the JSON cannot
drift apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from charnext import api
from charnext.cli.app import app
from charnext.config import SampleConfig

RECORDED = json.loads((Path(__file__).parent / "data" / "json_fields.json").read_text(encoding="utf-8"))
TEXT = "hihello hello world\nhi there\n" * 20
LINES = "anna\nbob\ncarl\ndora\n" * 30
COMMANDS = {
    "train": ["train", "--file", "t.txt", "--steps", "30", "--out", "m.pt", "--hidden-size", "16",
              "--seed", "1"],
    "predict": ["predict", "hihell", "-c", "m.pt"],
    "predict_generate": ["predict", "hi", "-c", "m.pt", "--length", "10", "--seed", "3"],
    "evaluate": ["evaluate", "--file", "t.txt", "-c", "m.pt"],
    "evaluate_show": ["evaluate", "--file", "t.txt", "-c", "m.pt", "--show"],
    "inspect": ["inspect", "m.pt"],
    "neurons": ["neurons", "--file", "t.txt", "-c", "m.pt"],
    "neurons_unit": ["neurons", "--file", "t.txt", "-c", "m.pt", "--unit", "0:1"],
    "prepare": ["prepare", "--file", "t.txt", "--out", "prep"],
    "predict_lines": ["predict", "an", "-c", "l.pt", "--length", "10", "--num-samples", "2", "--seed", "3"],
}  # fmt: skip


def shape(obj, path: str = "") -> dict[str, str]:
    """{field path: JSON type}: `.a.b` for objects, `[]` for a list's (first) items."""
    if isinstance(obj, dict):
        out = {path or ".": "object"}
        for k, v in obj.items():
            out.update(shape(v, f"{path}.{k}"))
        return out
    if isinstance(obj, list):
        out = {path: "array"}
        for v in obj[:1]:
            out.update(shape(v, path + "[]"))
        return out
    kinds = {bool: "boolean", int: "number", float: "number", str: "string", type(None): "null"}
    return {path: kinds[type(obj)]}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """Each command's JSON, run in one folder with a small stream model and a line model."""
    folder = tmp_path_factory.mktemp("json")
    (folder / "t.txt").write_text(TEXT, encoding="utf-8")
    (folder / "l.txt").write_text(LINES, encoding="utf-8")
    runner, out = CliRunner(), {}
    here = Path.cwd()
    try:
        import os

        os.chdir(folder)
        lines = [
            "train",
            "--file",
            "l.txt",
            "--lines",
            "--steps",
            "20",
            "--out",
            "l.pt",
            "--hidden-size",
            "16",
        ]
        assert runner.invoke(app, [*lines, "--json"]).exit_code == 0
        for name, args in COMMANDS.items():
            r = runner.invoke(app, [*args, "--json"])
            assert r.exit_code == 0, (name, r.output)
            out[name] = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        os.chdir(here)
    return folder, out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_field_is_still_there_with_its_type(outputs, name):
    """A field recorded before is still written, with the same type (a null, recorded or now,
    stands for any: the value was simply missing in one of the runs)."""
    now = shape(outputs[1][name])
    changed = {
        path: (kind, now.get(path, "missing"))
        for path, kind in RECORDED[name].items()
        if now.get(path, "missing") != kind and "null" not in (kind, now.get(path))
    }
    assert changed == {}


def test_the_check_sees_a_field_that_went_missing():
    recorded = shape({"a": 1, "b": {"c": "x"}})
    assert {p for p in recorded if p not in shape({"a": 1, "b": {}})} == {".b.c"}


def test_predict_json_is_the_completions_to_dict(outputs):
    folder, out = outputs
    ckpt = api.load(folder / "m.pt")
    prediction = api.predict(ckpt, "hi")
    sample = SampleConfig(temperature=1.0, seed=3)  # predict's defaults
    samples = api.generate(ckpt, "hi", 10, sample=sample)
    assert out["predict_generate"] == api.Completion(prediction, samples, 3).to_dict()


def test_evaluate_and_neurons_json_are_their_results_to_dict(outputs):
    folder, out = outputs
    ckpt = api.load(folder / "m.pt")
    text = (folder / "t.txt").read_text(encoding="utf-8")
    assert out["evaluate"] == json.loads(json.dumps(api.score(ckpt, text=text).to_dict()))
    assert out["evaluate"] == json.loads(json.dumps(api.EvaluateReport(api.evaluate(ckpt, text)).to_dict()))
    report = api.neurons(ckpt, text, unit="0:1")
    assert isinstance(report, api.NeuronsReport)
    assert out["neurons_unit"] == json.loads(json.dumps(report.to_dict()))
    assert out["inspect"] == json.loads(json.dumps(api.describe(ckpt).to_dict()))
