"""charnext's AdamW: torch.optim.AdamW(fused=True)'s arithmetic and state, without torch._dynamo."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest
import torch

from charnext.training.optim import AdamW


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Embedding(11, 6), torch.nn.LSTM(6, 8, batch_first=True))


def _steps(model, opt, lrs, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    for lr in lrs:
        x = torch.randint(0, 11, (3, 5), generator=gen)
        out, _ = model(x)
        loss = out.pow(2).mean()
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _same_state(a: dict, b: dict) -> None:
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        sa, sb = a["state"][k], b["state"][k]
        assert list(sa) == list(sb)
        for name in sa:
            assert sa[name].dtype == sb[name].dtype and sa[name].device == sb[name].device
            assert torch.equal(sa[name], sb[name]), (k, name)


LRS = [0.01, 0.02, 0.005, 0.03, 0.001]


def test_the_same_arithmetic_and_state_as_torch_fused_adamw():
    ours, theirs = _model(), _model()
    opt_ours = AdamW(ours.parameters(), lr=0.01, weight_decay=0.1)
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=0.01, weight_decay=0.1, fused=True)
    _steps(ours, opt_ours, LRS)
    _steps(theirs, opt_theirs, LRS)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)  # bit for bit
    _same_state(opt_ours.state_dict(), opt_theirs.state_dict())


@pytest.mark.parametrize("first", ["torch", "ours"])
def test_state_moves_between_the_two_and_training_goes_on_bitwise(first):
    make = {
        "torch": lambda m: torch.optim.AdamW(m.parameters(), lr=0.01, weight_decay=0.05, fused=True),
        "ours": lambda m: AdamW(m.parameters(), lr=0.01, weight_decay=0.05),
    }
    second = "ours" if first == "torch" else "torch"
    reference = _model()
    ref_opt = make[first](reference)
    _steps(reference, ref_opt, LRS[:3])
    saved_weights = {k: v.clone() for k, v in reference.state_dict().items()}
    saved_opt = copy.deepcopy(ref_opt.state_dict())  # the state's tensors live on in the optimizer
    _steps(reference, ref_opt, LRS[3:], seed=2)

    resumed = _model(seed=9)
    resumed.load_state_dict(saved_weights)
    opt = make[second](resumed)
    opt.load_state_dict(saved_opt)
    _steps(resumed, opt, LRS[3:], seed=2)
    for a, b in zip(reference.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_a_state_that_does_not_fit_is_refused():
    model = _model()
    opt = AdamW(model.parameters(), lr=0.01)
    _steps(model, opt, LRS[:1])
    good = opt.state_dict()
    wrong_shape = {**good, "state": {**good["state"], 0: {**good["state"][0], "exp_avg": torch.zeros(2, 2)}}}
    with pytest.raises(ValueError, match="shape"):
        AdamW(_model().parameters()).load_state_dict(wrong_shape)
    fewer = AdamW(list(_model().parameters())[:2])
    with pytest.raises(ValueError, match="parameters"):
        fewer.load_state_dict(good)
    not_a_number = {**good, "state": {**good["state"], 0: {**good["state"][0], "step": "three"}}}
    with pytest.raises(ValueError, match="step count"):
        AdamW(_model().parameters()).load_state_dict(not_a_number)


def test_training_never_imports_torch_dynamo(tmp_path):
    # a fresh process: this one may have imported torch._dynamo already (torch.optim above)
    script = (
        "import sys\n"
        "from charnext.cli.app import main\n"
        "sys.argv = ['charnext', 'train', 'hihello', '--steps', '5', '--out', sys.argv[1]]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "assert 'torch._dynamo' not in sys.modules, 'training imported torch._dynamo'\n"
        "assert 'torch' in sys.modules\n"
        "print('no dynamo')\n"
    )
    out = tmp_path / "hi.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("no dynamo") and out.is_file()
