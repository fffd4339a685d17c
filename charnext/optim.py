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
        that does not fit the parameters."""
        saved_groups = state_dict.get("param_groups") if isinstance(state_dict, dict) else None
        saved_state = state_dict.get("state") if isinstance(state_dict, dict) else None
        if not isinstance(saved_groups, list) or not isinstance(saved_state, dict):
            raise ValueError("the optimizer state is not a state_dict")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("the optimizer state has a different number of parameter groups")
        id_map: dict[int, torch.Tensor] = {}
        new_groups = []
        for group, saved in zip(self.param_groups, saved_groups):
            if not isinstance(saved, dict) or not isinstance(saved.get("params"), list):
                raise ValueError("the optimizer state has a malformed parameter group")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError("the optimizer state does not match the model's parameters")
            id_map.update(zip(saved["params"], group["params"]))
            new = {**GROUP_DEFAULTS, **{k: v for k, v in saved.items() if k != "params"}}
            new["decoupled_weight_decay"] = True  # AdamW, whatever was saved (as torch.optim.AdamW)
            if new["amsgrad"] or new["maximize"]:
                raise ValueError("the optimizer state asks for amsgrad or maximize; charnext uses neither")
            new["fused"] = True  # the step count moves beside its parameter, below
            new_groups.append({"params": group["params"], **new})
        state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        for key, value in saved_state.items():
            p = id_map.get(key)
            if p is None or not isinstance(value, dict):
                raise ValueError(f"the optimizer state names parameter {key!r}, which the model lacks")
            if set(value) != {"step", "exp_avg", "exp_avg_sq"}:
                raise ValueError(f"the optimizer state of parameter {key} is not AdamW's")
            step, avg, sq = value["step"], value["exp_avg"], value["exp_avg_sq"]
            if not all(isinstance(t, torch.Tensor) and t.shape == p.shape for t in (avg, sq)):
                raise ValueError(f"the optimizer state of parameter {key} does not match its shape")
            if isinstance(step, torch.Tensor):
                if step.numel() != 1:
                    raise ValueError(f"the optimizer step count of parameter {key} is not one number")
                step = step.to(dtype=torch.float32, device=p.device)
            elif isinstance(step, (int, float)) and not isinstance(step, bool):  # older torch: a number
                step = torch.tensor(float(step), dtype=torch.float32, device=p.device)
            else:
                raise ValueError(f"the optimizer step count of parameter {key} is not a number")
            state[p] = {
                "step": step.reshape(()),
                "exp_avg": avg.to(dtype=p.dtype, device=p.device),
                "exp_avg_sq": sq.to(dtype=p.dtype, device=p.device),
            }
        self.param_groups = new_groups
        self.state = state


def _by_device_and_dtype(tensors: list[torch.Tensor]) -> list[list[int]]:
    """The indices of `tensors`, grouped by device and dtype, each group in order."""
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault((t.device, t.dtype), []).append(i)
    return list(groups.values())
