"""AdamW on torch's fused kernel, without `torch.optim`.

`torch.optim.Optimizer` imports `torch._dynamo` the first time it is used (its constructor,
`step`, `zero_grad` and `state_dict` are wrapped for torch.compile): about 2 s on a CPU without
bf16, more than the whole of a small training run. charnext compiles nothing, so it calls the
kernel `torch.optim.AdamW(fused=True)` calls, `torch._fused_adamw_`, the same way (the step
counts raised by one with `torch._foreach_add_`, then the update), and keeps its state in the
same layout: the same arithmetic bit for bit, and the same `state_dict`, so checkpoints written
with either one resume with the other. tests/test_optim.py holds both to it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

# The hyperparameters of a parameter group, in torch.optim.AdamW's order, with its defaults:
# what `state_dict()["param_groups"]` holds, so that the two read each other's state.
GROUP_DEFAULTS = {
    "lr": 1e-3,
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "weight_decay": 1e-2,
    "amsgrad": False,
    "maximize": False,
    "foreach": None,
    "capturable": False,
    "differentiable": False,
    "fused": True,
    "decoupled_weight_decay": True,
}
FUSED_DEVICES = ("cpu", "cuda")  # where charnext trains with the fused kernel (as before)


def make_adamw(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float, device: torch.device):
    """The optimizer for a run on `device`: this module's AdamW where the fused kernel runs
    (the CPU, CUDA); elsewhere (MPS) torch's own, as charnext has always used there."""
    if device.type in FUSED_DEVICES:
        return AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


class AdamW:
    """AdamW (decoupled weight decay) on one parameter group: `step`, `zero_grad`,
    `state_dict`, `load_state_dict` and `param_groups`, as `torch.optim.AdamW(fused=True)`."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        group = {"params": list(params), **GROUP_DEFAULTS}
        group.update(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        self.param_groups: list[dict] = [group]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}  # per parameter, once it has stepped

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdamW does not support sparse gradients")
                state = self.state.get(p)
                if not state:  # as torch: a float32 step count beside the parameter, zero moments
                    state = self.state[p] = {
                        "step": torch.zeros((), dtype=torch.float32, device=p.device),
                        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                    }
                params.append(p)
                grads.append(p.grad)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                steps.append(state["step"])
            if not params:
                continue
            beta1, beta2 = group["betas"]
            # torch groups the tensors by device and dtype first; one kernel call per group
            for index in _by_device_and_dtype(params):
                group_steps = [steps[i] for i in index]
                torch._foreach_add_(group_steps, 1)
                torch._fused_adamw_(
                    [params[i] for i in index],
                    [grads[i] for i in index],
                    [exp_avgs[i] for i in index],
                    [exp_avg_sqs[i] for i in index],
                    [],  # max_exp_avg_sqs: amsgrad is off
                    group_steps,
                    amsgrad=False,
                    lr=group["lr"],
                    beta1=beta1,
                    beta2=beta2,
                    weight_decay=group["weight_decay"],
                    eps=group["eps"],
                    maximize=False,
                    grad_scale=None,
                    found_inf=None,
                )

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the gradients (or zero them in place)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().requires_grad_(False).zero_()

    def state_dict(self) -> dict:
        """`{"state": {index: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [...]}`,
        parameters numbered in order, as `torch.optim.Optimizer.state_dict`."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        return {"state": {index[id(p)]: s for p, s in self.state.items()}, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """The state of `state_dict()`, this class's or torch.optim.AdamW's, with its saved
        hyperparameters; the moments cast to each parameter's dtype and device, the step count
        to float32 beside it (as torch does for its fused AdamW). Raises ValueError on a state
        that does not fit the parameters (see `check_state_dict`)."""
        params = [p for group in self.param_groups for p in group["params"]]
        if len(self.param_groups) != 1:
            raise ValueError("this AdamW loads the state of one parameter group")
        check_state_dict(state_dict, [tuple(p.shape) for p in params])
        saved = state_dict["param_groups"][0]
        group = {**GROUP_DEFAULTS, **{k: v for k, v in saved.items() if k != "params"}}
        group["decoupled_weight_decay"] = True  # AdamW, whatever was saved (as torch.optim.AdamW)
        group["fused"] = True  # the step count moves beside its parameter, below
        by_index = dict(zip(saved["params"], params))
        state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        for key, value in state_dict["state"].items():
            p = by_index[key]
            step = value["step"]
            if not isinstance(step, torch.Tensor):  # older torch saved a number
                step = torch.tensor(float(step))
            state[p] = {
                "step": step.to(dtype=torch.float32, device=p.device).reshape(()),
                "exp_avg": value["exp_avg"].to(dtype=p.dtype, device=p.device),
                "exp_avg_sq": value["exp_avg_sq"].to(dtype=p.dtype, device=p.device),
            }
        self.param_groups = [{"params": params, **group}]
        self.state = state


def check_state_dict(state_dict: object, shapes: list[tuple[int, ...]]) -> None:
    """Raise ValueError, saying what is wrong, unless `state_dict` is AdamW state (this module's
    or torch.optim.AdamW's: one parameter group) for parameters of these shapes, in order."""
    if not isinstance(state_dict, dict):
        raise ValueError("the optimizer state is not a state_dict")
    groups, state = state_dict.get("param_groups"), state_dict.get("state")
    if not isinstance(groups, list) or not isinstance(state, dict) or len(groups) != 1:
        raise ValueError("the optimizer state is not one parameter group's state_dict")
    group = groups[0]
    ids = group.get("params") if isinstance(group, dict) else None
    if not (isinstance(ids, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in ids)):
        raise ValueError("the optimizer state's parameter group is malformed")
    if len(ids) != len(shapes) or len(set(ids)) != len(ids):
        raise ValueError("the optimizer state does not match the model's parameters")
    for name in ("lr", "eps", "weight_decay"):
        if not _finite(group.get(name, 0.0)) or group.get(name, 0.0) < 0:
            raise ValueError(f"the optimizer's {name} is not a finite number")
    betas = group.get("betas", GROUP_DEFAULTS["betas"])
    if not (
        isinstance(betas, (tuple, list)) and len(betas) == 2 and all(_finite(b) and 0 <= b < 1 for b in betas)
    ):
        raise ValueError("the optimizer's betas are not two numbers in [0, 1)")
    if group.get("amsgrad") or group.get("maximize"):
        raise ValueError("the optimizer state asks for amsgrad or maximize; charnext uses neither")
    shape_of = dict(zip(ids, shapes))
    for key, value in state.items():
        if key not in shape_of or not isinstance(value, dict):
            raise ValueError(f"the optimizer state names parameter {key!r}, which the model lacks")
        if set(value) != {"step", "exp_avg", "exp_avg_sq"}:
            raise ValueError(f"the optimizer state of parameter {key} is not AdamW's")
        for name in ("exp_avg", "exp_avg_sq"):
            t = value[name]
            if not (
                isinstance(t, torch.Tensor) and t.dtype.is_floating_point and tuple(t.shape) == shape_of[key]
            ):
                raise ValueError(f"the optimizer state of parameter {key} does not match its shape")
        step = value["step"]
        if isinstance(step, torch.Tensor):
            step = step.item() if step.numel() == 1 and not step.dtype.is_complex else None
        if not _finite(step) or step < 0:
            raise ValueError(f"the optimizer step count of parameter {key} is not a number")


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _by_device_and_dtype(tensors: list[torch.Tensor]) -> list[list[int]]:
    """The indices of `tensors`, grouped by device and dtype, each group in order."""
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault((t.device, t.dtype), []).append(i)
    return list(groups.values())
