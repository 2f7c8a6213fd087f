"""Optimisers, per-epoch learning-rate schedules and fixbase (training only some layers).

Schedules are pure functions of the epoch (:func:`lr_factor`), applied at the start of every
epoch by :class:`EpochLR`; resuming therefore needs nothing but the epoch number.
"""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from omnireid.errors import UsageError

logger = logging.getLogger(__name__)

OPTIMIZERS = ("amsgrad", "adam", "sgd", "rmsprop")
SCHEDULES = ("constant", "single_step", "multi_step", "cosine")


def _top_level(name: str) -> str:
    return name.split(".", 1)[0]


def _check_layer_names(model: nn.Module, names: Sequence[str], what: str) -> None:
    children = [n for n, _ in model.named_children()]
    for n in names:
        if n not in children:
            close = difflib.get_close_matches(n, children, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UsageError(f"{what}: the model has no layer {n!r}.{hint} Layers: {', '.join(children)}")


def build_optimizer(
    model: nn.Module,
    name: str = "amsgrad",
    lr: float = 0.0015,
    *,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    nesterov: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    rmsprop_alpha: float = 0.99,
    new_layers: Sequence[str] = (),
    new_layers_lr_mult: float = 1.0,
    fused: bool | None = None,
    skip: Iterable[nn.Parameter] = (),
) -> torch.optim.Optimizer:
    """Build an optimiser over all parameters of ``model`` (except those in ``skip``).

    Args:
        name: ``amsgrad``, ``adam``, ``sgd`` or ``rmsprop``.
        lr: base learning rate.
        new_layers: top-level child names (e.g. ``["classifier"]``) trained at
            ``lr * new_layers_lr_mult``; they form the second parameter group.
        fused: update all parameters in one fused kernel (PyTorch's ``fused=True``) instead of
            one small loop of operations per parameter tensor (OSNet has ~330 of them, so the
            per-tensor loop costs about as much as a whole layer on the CPU). ``None``
            (default): fused where PyTorch supports it for these parameters (floating point,
            on the CPU or a GPU). Same update rule; results agree to float rounding.
        skip: parameters left out (trained by another optimiser, e.g. architecture weights).

    Each parameter group remembers its base rate in ``group["initial_lr"]`` for the schedule.
    """
    if name not in OPTIMIZERS:
        raise UsageError(f"unknown optimiser {name!r}; choose from {', '.join(OPTIMIZERS)}")
    module = model.module if hasattr(model, "module") else model
    if new_layers:
        _check_layer_names(module, new_layers, "optim.new_layers")
    base, new = [], []
    skipped = {id(p) for p in skip}
    for pname, p in module.named_parameters():
        if id(p) not in skipped:
            (new if _top_level(pname) in new_layers else base).append(p)
    groups = [{"params": base, "lr": lr, "initial_lr": lr}]
    if new:
        groups.append({"params": new, "lr": lr * new_layers_lr_mult, "initial_lr": lr * new_layers_lr_mult})
    if fused is None:
        fused = name != "rmsprop" and _can_fuse(base + new)
    kernel = {"fused": True} if fused else {}
    if name in ("amsgrad", "adam"):
        opt = torch.optim.Adam(groups, lr=lr, betas=betas, weight_decay=weight_decay,
                               amsgrad=name == "amsgrad", **kernel)
    elif name == "sgd":
        opt = torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay,
                              nesterov=nesterov, dampening=0.0, **kernel)
    else:
        opt = torch.optim.RMSprop(groups, lr=lr, momentum=momentum, weight_decay=weight_decay,
                                  alpha=rmsprop_alpha)
    return opt


def _can_fuse(params: list[torch.Tensor]) -> bool:
    """PyTorch's fused Adam/SGD take floating-point tensors on the CPU or a GPU, all on one
    device type."""
    devices = {p.device.type for p in params}
    return (bool(params) and len(devices) == 1 and devices <= {"cpu", "cuda"}
            and all(p.is_floating_point() for p in params))


class OptimizerSet:
    """Several optimisers stepped as one (e.g. network weights and architecture weights).

    Offers what the training loop and :class:`EpochLR` use: ``param_groups`` (all groups, in
    order), ``zero_grad``, ``step``, ``state_dict`` and ``load_state_dict``.
    """

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        if not optimizers:
            raise ValueError("OptimizerSet needs at least one optimiser")
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict]:
        return [g for opt in self.optimizers for g in opt.param_groups]

    @property
    def state(self) -> dict:
        return {k: v for opt in self.optimizers for k, v in opt.state.items()}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None) -> None:
        for opt in self.optimizers:
            opt.step()

    def state_dict(self) -> dict:
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        states = state.get("optimizers", [])
        if len(states) != len(self.optimizers):
            raise ValueError(f"optimiser state holds {len(states)} optimisers, expected {len(self.optimizers)}")
        for opt, st in zip(self.optimizers, states):
            opt.load_state_dict(st)


def lr_factor(
    epoch: int,
    name: str,
    max_epoch: int,
    *,
    stepsize: Sequence[int] = (),
    gamma: float = 0.1,
    warmup_epochs: int = 0,
    warmup_factor: float = 0.1,
    min_factor: float = 0.0,
) -> float:
    """Multiplier of the base learning rate during ``epoch`` (0-based).

    - ``constant``: 1.
    - ``single_step``: ``gamma ** (epoch // stepsize[0])``.
    - ``multi_step``: ``gamma ** (number of milestones <= epoch)``.
    - ``cosine``: ``min + (1 - min) * (1 + cos(pi * t / T)) / 2`` with ``t = epoch - warmup``,
      ``T = max_epoch - warmup``.
    - warm-up: for ``epoch < warmup_epochs`` the factor is
      ``warmup_factor + (1 - warmup_factor) * epoch / warmup_epochs``.
    """
    if warmup_epochs > 0 and epoch < warmup_epochs:
        return warmup_factor + (1.0 - warmup_factor) * epoch / warmup_epochs
    if name == "constant":
        return 1.0
    if name == "single_step":
        if not stepsize or stepsize[0] <= 0:
            raise UsageError("single_step needs a positive stepsize")
        return gamma ** (epoch // stepsize[0])
    if name == "multi_step":
        return gamma ** sum(1 for m in stepsize if epoch >= m)
    if name == "cosine":
        span = max(1, max_epoch - warmup_epochs)
        t = min(epoch - warmup_epochs, span)
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * t / span))
    raise UsageError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")


class EpochLR:
    """Sets every group's ``lr = initial_lr * lr_factor(epoch, ...)``; call ``step(epoch)``
    at the start of each epoch. Stateless apart from its options."""

    def __init__(self, optimizer: torch.optim.Optimizer, name: str, max_epoch: int, **options) -> None:
        if name not in SCHEDULES:
            raise UsageError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
        self.optimizer = optimizer
        self.name = name
        self.max_epoch = max_epoch
        self.options = options
        lr_factor(0, name, max_epoch, **options)  # validate early

    def factor(self, epoch: int) -> float:
        return lr_factor(epoch, self.name, self.max_epoch, **self.options)

    def step(self, epoch: int) -> list[float]:
        f = self.factor(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * f
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"name": self.name, "max_epoch": self.max_epoch, "options": dict(self.options)}

    def load_state_dict(self, state: dict) -> None:
        if state.get("name") != self.name or state.get("max_epoch") != self.max_epoch:
            logger.info("resuming with schedule %s/%s (checkpoint had %s/%s)", self.name,
                           self.max_epoch, state.get("name"), state.get("max_epoch"))


def set_trainable(model: nn.Module, open_layers: Sequence[str] | None) -> list[str]:
    """Fixbase: train only ``open_layers`` (top-level child names), or everything for ``None``.

    Closed layers get ``requires_grad=False`` and are put in eval mode (BatchNorm statistics
    stay fixed); open layers are in train mode. Returns the names of the trainable parameters.
    """
    module = model.module if hasattr(model, "module") else model
    if open_layers is None:
        module.train()
        for p in module.parameters():
            p.requires_grad_(True)
        return [n for n, _ in module.named_parameters()]
    _check_layer_names(module, open_layers, "optim.open_layers")
    module.train()
    for child_name, child in module.named_children():
        is_open = child_name in open_layers
        child.train(is_open)
        for p in child.parameters():
            p.requires_grad_(is_open)
    for pname, p in module.named_parameters(recurse=False):
        p.requires_grad_(False)
        del pname
    return [n for n, p in module.named_parameters() if p.requires_grad]


__all__ = ["EpochLR", "OPTIMIZERS", "OptimizerSet", "SCHEDULES", "build_optimizer", "lr_factor",
           "set_trainable"]
