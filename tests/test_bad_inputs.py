"""Bad input never ends in a traceback: wrong --out paths and damaged checkpoints are refused in
one line with a non-zero exit, by every loader, and every existing file stays byte for byte."""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from charnext.cli.app import app
from charnext.errors import CheckpointError
from charnext.storage import checkpoint as ckpt
from charnext.storage import tensorfile
from charnext.training.run_state import check_resumable

runner = CliRunner()
TINY = ["--hidden-size", "8", "--num-layers", "1", "--precision", "fp32", "--device", "cpu",
        "--seq-len", "16", "--batch-size", "4", "--eval-every", "3", "--val-fraction", "0.2"]  # fmt: skip


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def refused(result, *words: str) -> str:
    """The one line a refusal prints (exit 1, `error: ...`, no traceback), holding `words`."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def run(tmp_path, poem) -> Path:
    """A small resumable run, `run.pt` beside its text `poem.txt` and its metrics log."""
    text = tmp_path / "poem.txt"
    text.write_text(poem, encoding="utf-8")
    result = cli("train", "--file", text, "--out", tmp_path / "run.pt", "--steps", 6, *TINY)
    assert result.exit_code == 0, result.output
    return tmp_path / "run.pt"


def rewrite(path: Path, tensors=None, header=None, **metadata) -> None:
    """Rewrite a format-2 file: tensors replaced (name -> array, None removes), metadata
    entries replaced (JSON values), then `header(dict)` applied to the raw header."""
    file = tensorfile.read(path.read_bytes())
    arrays = {**file.tensors, **(tensors or {})}
    arrays = {k: v for k, v in arrays.items() if v is not None}
    meta = {**file.metadata, **{k: json.dumps(v) for k, v in metadata.items()}}
    with open(path, "wb") as f:
        tensorfile.write(f, arrays, meta, file.bf16 & set(arrays))
    if header is not None:
        data = path.read_bytes()
        (n,) = struct.unpack("<Q", data[:8])
        head = json.loads(data[8 : 8 + n])
        header(head)
        text = json.dumps(head).encode()
        text += b" " * (-(8 + len(text)) % 8)
        path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + n :])


def meta_of(path: Path, key: str):
    return json.loads(tensorfile.read(path.read_bytes()).metadata[key])


# -- --out --------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["runs", "runs/"])
def test_train_out_onto_a_folder_is_refused_before_training(tmp_path, poem, where):
    """`--out runs` (an existing folder) or `runs/` means runs/checkpoint.pt; a folder standing
    where the checkpoint would go is refused before the first step, not after the last."""
    text = tmp_path / "poem.txt"
    text.write_text(poem, encoding="utf-8")
    (tmp_path / "runs" / "checkpoint.pt").mkdir(parents=True)
    before = files(tmp_path)
    result = cli("train", "--file", text, "--out", str(tmp_path / where), "--steps", 500, *TINY)
    refused(result, "is a folder")
    assert "step" not in result.stdout  # refused before the first step
    assert files(tmp_path) == before


def test_train_out_the_text_itself_is_refused(tmp_path, poem):
    text = tmp_path / "poem.txt"
    text.write_text(poem, encoding="utf-8")
    before = files(tmp_path)
    refused(cli("train", "--file", text, "--out", text, "--steps", 3, *TINY), "the text being trained on")
    assert files(tmp_path) == before


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in (root writes anywhere a mode allows: /sys)."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
        return folder
    try:
        fd, probe = tempfile.mkstemp(dir="/sys")
    except OSError:
        return Path("/sys")
    os.close(fd)
    os.unlink(probe)
    pytest.skip("no folder here refuses new files to root")


def test_train_out_in_an_unwritable_folder_is_refused_before_training(tmp_path, poem):
    folder = _unwritable_folder(tmp_path)
    before = files(tmp_path)
    result = cli("train", poem[:400], "--out", folder / "run.pt", "--steps", 500, *TINY)
    refused(result, "cannot write")
    assert "step" not in result.stdout
    assert files(tmp_path) == before


def test_resume_out_onto_a_folder_is_refused(run):
    folder = run.parent / "elsewhere"
    (folder / "checkpoint.pt").mkdir(parents=True)
    before = files(run.parent)
    refused(cli("train", "--resume", run, "--out", folder, "--steps", 9), "is a folder")
    assert files(run.parent) == before


def test_export_out_a_folder_or_the_checkpoint_itself_is_refused(run):
    folder = run.parent / "exports"
    folder.mkdir()
    before = files(run.parent)
    refused(cli("export", run, "--out", folder), "is a folder")
    refused(cli("export", run, "--out", run), "training state")
    assert files(run.parent) == before


def test_a_folder_put_where_the_checkpoint_goes_mid_run_ends_in_one_line(tmp_path, poem, monkeypatch):
    out = tmp_path / "run.pt"
    from charnext.storage import writing

    real = writing._write

    def folder_in_the_way(path, raw):  # as if someone made a folder there while the run trained
        Path(path).mkdir(exist_ok=True)
        return real(path, raw)

    monkeypatch.setattr(writing, "_write", folder_in_the_way)
    refused(cli("train", poem[:400], "--out", out, "--steps", 3, *TINY), "cannot write", "folder")


# -- weights, resume state and header of damaged checkpoints, through every loader -------------


def test_weights_that_disagree_with_their_config_are_refused_by_every_loader(run, tmp_path, poem):
    rewrite(run, tensors={"head.weight": np.zeros((3, 3), dtype=np.float32)})
    before = files(tmp_path)
    with pytest.raises(CheckpointError, match="head.weight"):
        ckpt.load_raw(run)
    refused(cli("train", "--resume", run, "--steps", 9), "damaged", "head.weight")
    refused(
        cli("train", poem[:400], "--init-from", run, "--out", tmp_path / "new.pt"), "damaged", "head.weight"
    )
    refused(cli("export", run, "--out", tmp_path / "m.safetensors"), "damaged", "head.weight")
    refused(cli("inspect", run), "damaged", "head.weight")
    assert files(tmp_path) == before


@pytest.mark.parametrize(
    ("rng", "words"),
    [
        (np.zeros(5056, dtype=np.float32), "random state"),  # torch.set_rng_state: not a ByteTensor
        (np.zeros(10, dtype=np.uint8), "random state"),  # a ByteTensor of the wrong size
    ],
)
def test_a_damaged_random_state_is_refused(run, rng, words):
    rewrite(run, tensors={"resume.rng": rng})
    before = files(run.parent)
    refused(cli("train", "--resume", run, "--steps", 9), "damaged", words)
    assert files(run.parent) == before


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"tensors": {"resume.state": np.zeros((1, 4, 3), dtype=np.float32)}}, "carried state"),
        ({"tensors": {"optimizer.state.0.exp_avg": np.zeros((2, 2), dtype=np.float32)}}, "shape"),
        ({"tensors": {"optimizer.state.0.step": np.zeros(3, dtype=np.float32)}}, "step count"),
        ({"train_config": {"seq_len": "16"}}, "seq_len"),
        ({"train_config": {"device": "quantum"}}, "device"),
        ({"train_config": {"lr": float("nan")}}, "lr"),
    ],
)
def test_damaged_training_state_is_refused_on_resume(run, change, words):
    if "train_config" in change:
        change = {"train_config": {**meta_of(run, "train_config"), **change["train_config"]}}
        change["train_config"] = {k: ({"__float__": "nan"} if isinstance(v, float) and math.isnan(v) else v)
                                  for k, v in change["train_config"].items()}  # fmt: skip
    rewrite(run, **change)
    before = files(run.parent)
    refused(cli("train", "--resume", run, "--steps", 9), "damaged", words)
    assert files(run.parent) == before


def _set_dtype(value):
    def change(head):
        head["head.weight"]["dtype"] = value

    return change


def _set_shape(value):
    def change(head):
        head["head.weight"]["shape"] = value

    return change


def _add_empty_tensor(shape):
    def change(head):
        end = max(info["data_offsets"][1] for name, info in head.items() if name != "__metadata__")
        head["huge"] = {"dtype": "F32", "shape": shape, "data_offsets": [end, end]}

    return change


@pytest.mark.parametrize(
    "header",
    [
        _set_dtype(["F32"]), _set_dtype({"F": 32}), _set_dtype(32), _set_dtype(None), _set_dtype(True),
        _add_empty_tensor([10**30, 0]), _add_empty_tensor([2**40, 2**40, 0]), _set_shape([-1, 8]),
        _set_shape([1e30, 8]), _set_shape([5.0, 8]), _set_shape([True, 8]), _set_shape(["5", 8]),
        _set_shape("5x8"), _set_shape([1] * 40),
    ],
)  # fmt: skip
def test_a_header_of_any_json_type_is_refused_by_inspect_and_predict(run, header):
    rewrite(run, header=header)
    before = files(run.parent)
    refused(cli("inspect", run), "not a readable charnext checkpoint")
    refused(cli("predict", "--prefix", "Ty", "-c", run), "not a readable charnext checkpoint")
    refused(cli("train", "--resume", run, "--steps", 9), "not a readable charnext checkpoint")
    assert files(run.parent) == before


def test_offsets_that_are_not_numbers_are_refused(run):
    def change(head):
        head["head.bias"]["data_offsets"] = [str(o) for o in head["head.bias"]["data_offsets"]]

    rewrite(run, header=change)
    refused(cli("inspect", run), "malformed data_offsets")


# -- fields of the model and of the record -------------------------------------------------------


@pytest.mark.parametrize(
    ("model_config", "words"),
    [
        ({"hidden_size": "8"}, "hidden_size"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"hidden_size": -8}, "hidden_size"),
        ({"hidden_size": 8.0}, "hidden_size"),
        ({"num_layers": 10**9}, "num_layers"),  # refused at once, not after listing a billion layers
        ({"dropout": float("nan")}, "dropout"),
        ({"cell": ["lstm"]}, "cell"),
        ({"embedding_size": None}, "embedding_size"),
    ],
)
def test_an_impossible_model_config_is_refused_by_every_loader(run, tmp_path, model_config, words):
    config = {**meta_of(run, "model_config"), **model_config}
    if isinstance(config.get("dropout"), float) and math.isnan(config["dropout"]):
        config["dropout"] = {"__float__": "nan"}
    rewrite(run, model_config=config)
    before = files(tmp_path)
    refused(cli("inspect", run), "damaged", words)
    refused(cli("train", "--resume", run, "--steps", 9), "damaged", words)
    refused(cli("export", run, "--out", tmp_path / "m.safetensors"), "damaged", words)
    assert files(tmp_path) == before


@pytest.mark.parametrize("vocab", [["ab", "c"], [1, 2], [None], ["a", "a"]])
def test_a_vocabulary_of_anything_but_single_characters_is_refused(run, tmp_path, vocab, poem):
    rewrite(run, vocab=vocab)
    refused(cli("inspect", run), "damaged")
    refused(cli("train", poem[:400], "--init-from", run, "--out", tmp_path / "n.pt"), "damaged")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("step", "five"), ("step", -3), ("history", [1, 2]), ("history", {"loss": ["low"]}),
        ("vocab_counts", [1, 2, 3]), ("text", "poem"), ("summary", {"elapsed": "soon"}),
        ("metrics_log", "../elsewhere.jsonl"), ("metrics_log", ""), ("provenance", ["command"]),
        ("line_index", "x"), ("line_index", [1, 2]),
    ],
)  # fmt: skip
def test_a_malformed_record_field_is_refused_in_one_line(run, field, value):
    rewrite(run, **{field: value})
    before = files(run.parent)
    refused(cli("inspect", run), "damaged", field)
    refused(cli("train", "--resume", run, "--steps", 9), "damaged", field)
    assert files(run.parent) == before


def test_odd_provenance_and_a_damaged_metrics_log_still_inspect(run):
    provenance = meta_of(run, "provenance")
    rewrite(
        run, provenance={**provenance, "schedule": ["x"], "plan": {"why": "w", "planned": 3}, "command": 7}
    )
    log = run.with_name("run.metrics.jsonl")
    log.write_bytes(log.read_bytes() + b"[1, 2]\n\xff\xfe not utf-8\n42\n")
    result = cli("inspect", run)
    assert result.exit_code == 0, result.output
    assert "run.metrics.jsonl (6 steps" in " ".join(result.stdout.split())
    assert cli("train", "--resume", run, "--steps", 8).exit_code == 0  # the log's good lines kept
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines() if '"kind": "step"' in line]
    assert steps == list(range(1, 9))


def test_a_state_dict_from_torch_optim_still_resumes(run):
    """A checkpoint's optimizer state as torch.optim.AdamW wrote it (main before issue 17) loads."""
    raw = ckpt.load_raw(run)
    check_resumable(run, raw)  # no complaint about the layout charnext has always written
    groups = raw["optimizer"]["param_groups"]
    assert groups[0]["fused"] is True and isinstance(groups[0]["betas"], tuple)
    assert torch.is_tensor(raw["optimizer"]["state"][0]["step"])


def test_plot_into_a_folder_is_refused_and_a_name_without_suffix_is_written_as_named(run):
    pytest.importorskip("matplotlib")
    folder = run.parent / "plots"
    folder.mkdir()
    before = files(run.parent)
    refused(cli("inspect", run, "--plot", folder), "is a folder")
    assert files(run.parent) == before
    result = cli("inspect", run, "--plot", run.parent / "curves")
    assert result.exit_code == 0, result.output
    assert (run.parent / "curves").read_bytes()[:4] == b"\x89PNG"  # that name, not curves.png
    assert not (run.parent / "curves.png").exists()


@pytest.mark.parametrize("option", [["--hidden-size", "100000000"], ["--num-layers", "1000000000"],
                                    ["--embedding-size", "1000000000"]])  # fmt: skip
def test_a_model_too_large_for_memory_is_refused_before_torch_allocates_it(tmp_path, option):
    result = cli("train", "hihello", "--out", tmp_path / "big.pt", *option)
    refused(result, "parameters", "GiB")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command, flag",
    [(["evaluate"], "--file"), (["neurons"], "--file"), (["predict"], "--prefix-file")],
)
def test_a_text_that_names_a_file_draws_a_note(hihello, tmp_path, monkeypatch, command, flag):
    """`charnext evaluate heldout.txt`: the literal text is what is read, and a note says how
    to read the file instead."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hello").write_text("hihello hihello\n", encoding="utf-8")  # a name in the vocabulary
    r = CliRunner().invoke(app, [*command, "hello", "-c", str(hihello)])
    assert r.exit_code == 0, r.output
    assert f"the literal 'hello' (5 characters), not the file; did you mean {flag} hello?" in r.output
    away = CliRunner().invoke(app, [*command, "hihello", "-c", str(hihello)])  # no such file: no note
    assert away.exit_code == 0 and "note:" not in away.output
