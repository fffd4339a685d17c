"""The API is one front door: one list of public names (`charnext.api.__all__`), which the
package re-exports without importing numpy or torch; every public function returns a typed
result (or a stream of them); one meaning per name."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import charnext
from charnext import api

PACKAGE = Path(charnext.__file__).parent
UNTYPED = {"dict", "tuple", "Any", "object", "None", ""}


def _public_functions():
    return {
        name: fn
        for name, fn in vars(api).items()
        if inspect.isfunction(fn) and fn.__module__ == "charnext.api" and not name.startswith("_")
    }


def test_every_public_function_is_in_all():
    missing = sorted(set(_public_functions()) - set(api.__all__))
    assert missing == [], f"public functions of charnext.api missing from __all__: {missing}"
    for name in api.__all__:
        assert hasattr(api, name), name  # lazy names resolve too


@pytest.mark.parametrize("name", sorted(_public_functions()))
def test_every_public_function_returns_a_typed_result(name):
    returns = inspect.signature(_public_functions()[name]).return_annotation
    assert returns is not inspect.Signature.empty, f"{name} has no return annotation"
    text = str(returns)
    assert text.split("[")[0].strip() not in UNTYPED, f"{name} returns {text}: give it a typed result"


def test_describe_neurons_and_score_return_their_results(hihello, tmp_path):
    ckpt = api.load(hihello)
    assert isinstance(api.describe(ckpt), api.Description)
    assert isinstance(api.neurons(ckpt, "hihello"), api.NeuronsReport)
    assert isinstance(api.score(ckpt, text="hihello"), api.EvaluateReport)
    out = tmp_path / "run.pt"
    run = api.start_run("hihello", out=out, steps=2, hidden_size=8, num_layers=1, device="cpu")
    assert isinstance(run, api.TrainingRun) and not hasattr(run, "vocab")
    assert run.header.vocab_size == 5 and run.header.num_layers == 1
    result = run.run()
    assert isinstance(result, api.TrainResult) and result is run.result and result.steps == 2


def test_the_package_re_exports_exactly_the_api():
    assert set(charnext.__all__) == {"__version__", *api.__all__}
    for name in api.__all__:
        assert getattr(charnext, name) is getattr(api, name), name
    with pytest.raises(AttributeError):
        charnext.read_text  # noqa: B018 - a helper of the command line, not the API's


def test_importing_the_package_imports_neither_numpy_nor_torch():
    code = "import sys, charnext; print('numpy' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# -- one meaning per name -----------------------------------------------------------------------

# where `top_k` may appear, and why: each place means the sampling cut (SampleConfig.top_k), but
# the API's deprecated keyword, which is the old name of `alternatives`
TOP_K_MEANS_THE_CUT = {
    "config.py": "SampleConfig.top_k, the field and its checks",
    "inference/sampling.py": "the one draw site applies the cut",
    "inside/report.py": "names the sample's cut on the page",
    "cli/inside_cmds.py": "--top-k of report and play",
    "cli/predict_cmd.py": "--top-k of predict",
    "serve/protocol.py": "top_k, the sampling cut a request may add (an extension of the API)",
}
DEPRECATED = re.compile(r'_renamed\("top_k"|top_k: int \| None = None|`top_k`|`top_k=`')


def top_k_misuses(root: Path) -> list[str]:
    """Lines of the package that say `top_k` where it does not mean the sampling cut."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "top_k" not in line or rel in TOP_K_MEANS_THE_CUT or rel.startswith("training/"):
                continue
            if rel == "api.py" and DEPRECATED.search(line):
                continue
            found.append(f"{rel}:{number}: {line.strip()}")
    return found


def test_top_k_means_only_the_sampling_cut():
    assert top_k_misuses(PACKAGE) == []


def test_the_top_k_check_can_fail(tmp_path):
    (tmp_path / "inference").mkdir()
    (tmp_path / "inference" / "steps.py").write_text("def f(top_k=3):\n    return top_k\n")
    assert len(top_k_misuses(tmp_path)) == 2


def test_the_old_keyword_still_works_with_a_warning(hihello):
    ckpt = api.load(hihello)
    with pytest.warns(DeprecationWarning, match="alternatives"):
        old = api.predict(ckpt, "hihell", top_k=2)
    assert old == api.predict(ckpt, "hihell", alternatives=2)
    assert all(len(s.top) == 2 for s in old.steps)
    with pytest.warns(DeprecationWarning):
        shown = api.surprisal(ckpt, "hihello", top_k=4)
    assert all(len(c.top) == 4 for c in shown.chars if c.prob is not None)


def test_every_command_that_reads_a_checkpoint_takes_c():
    import typer

    from charnext.cli.app import app

    for name, command in typer.main.get_command(app).commands.items():
        flags = {o for p in command.params for o in getattr(p, "opts", [])}
        if name in ("train", "prepare"):
            continue
        assert {"-c", "--checkpoint"} <= flags, name
