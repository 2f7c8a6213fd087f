"""Optimisers, per-epoch learning-rate schedules and fixbase (training only some layers).

Schedules are pure functions of the epoch (:func:`lr_factor`), applied at the start of every
epoch by :class:`EpochLR`; resuming therefore needs nothing but the epoch number.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from omnireid.errors import UsageError
from omnireid.registry import did_you_mean, lookup

logger = logging.getLogger(__name__)



def _top_level(name: str) -> str:
    return name.split(".", 1)[0]


def _check_layer_names(model: nn.Module, names: Sequence[str], what: str) -> None:
    children = [n for n, _ in model.named_children()]
    for n in names:
        if n not in children:
            raise UsageError(f"{what}: the model has no layer {n!r}.{did_you_mean(n, children)} "
                             f"Layers: {', '.join(children)}")


def _adam(groups: list[dict], lr: float, o: dict, kernel: dict) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, lr=lr, betas=o["betas"], weight_decay=o["weight_decay"],
                            amsgrad=False, **kernel)


def _amsgrad(groups: list[dict], lr: float, o: dict, kernel: dict) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, lr=lr, betas=o["betas"], weight_decay=o["weight_decay"],
                            amsgrad=True, **kernel)


def _sgd(groups: list[dict], lr: float, o: dict, kernel: dict) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=lr, momentum=o["momentum"], weight_decay=o["weight_decay"],
                           nesterov=o["nesterov"], dampening=0.0, **kernel)


def _rmsprop(groups: list[dict], lr: float, o: dict, kernel: dict) -> torch.optim.Optimizer:
    # PyTorch has no fused RMSprop kernel: ``kernel`` is not passed on
    return torch.optim.RMSprop(groups, lr=lr, momentum=o["momentum"], weight_decay=o["weight_decay"],
                               alpha=o["rmsprop_alpha"])


#: The optimisers by name (``optim.name`` in a recipe): ``builder(groups, lr, options, kernel)``.
OPTIMIZERS: dict[str, Callable[[list[dict], float, dict, dict], torch.optim.Optimizer]] = {
    "amsgrad": _amsgrad,
    "adam": _adam,
    "sgd": _sgd,
    "rmsprop": _rmsprop,
}
_UNFUSED = frozenset({"rmsprop"})


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
    build = lookup("optimiser", name, OPTIMIZERS)
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
        fused = name not in _UNFUSED and _can_fuse(base + new)
    kernel = {"fused": True} if fused else {}
    options = {"weight_decay": weight_decay, "momentum": momentum, "nesterov": nesterov,
               "betas": betas, "rmsprop_alpha": rmsprop_alpha}
    return build(groups, lr, options, kernel)


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


def _constant(epoch: int, max_epoch: int, **_: object) -> float:
    return 1.0


def _single_step(epoch: int, max_epoch: int, *, stepsize: Sequence[int], gamma: float,
                 **_: object) -> float:
    if not stepsize or stepsize[0] <= 0:
        raise UsageError("single_step needs a positive stepsize")
    return gamma ** (epoch // stepsize[0])


def _multi_step(epoch: int, max_epoch: int, *, stepsize: Sequence[int], gamma: float,
                **_: object) -> float:
    return gamma ** sum(1 for m in stepsize if epoch >= m)


def _cosine(epoch: int, max_epoch: int, *, warmup_epochs: int, min_factor: float,
            **_: object) -> float:
    span = max(1, max_epoch - warmup_epochs)
    t = min(epoch - warmup_epochs, span)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * t / span))


#: The learning-rate schedules by name (``sched.name`` in a recipe); each gives the factor of
#: the base rate at an epoch after warm-up (see :func:`lr_factor`).
SCHEDULES: dict[str, Callable[..., float]] = {
    "constant": _constant,
    "single_step": _single_step,
    "multi_step": _multi_step,
    "cosine": _cosine,
}


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
    factor = lookup("schedule", name, SCHEDULES)
    return factor(epoch, max_epoch, stepsize=stepsize, gamma=gamma, warmup_epochs=warmup_epochs,
                  min_factor=min_factor)


class EpochLR:
    """Sets every group's ``lr = initial_lr * lr_factor(epoch, ...)``; call ``step(epoch)``
    at the start of each epoch. Stateless apart from its options."""

    def __init__(self, optimizer: torch.optim.Optimizer, name: str, max_epoch: int, **options) -> None:
        lookup("schedule", name, SCHEDULES)
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
