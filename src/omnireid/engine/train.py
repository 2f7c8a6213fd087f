"""One training epoch: forward under autocast, loss, backward, clipping, optimiser step.

Every step is checked: a NaN/infinite loss or gradient stops the epoch before the optimiser step
(the weights stay as they were), and BatchNorm running statistics that became non-finite (a
training-mode forward pass updates them before any loss exists) stop it right after the step
that poisoned them. Either way :class:`NonFiniteLossError` says what, where and when.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from omnireid.data.loaders import BadImage
from omnireid.engine.ddp import DistInfo, broadcast_flag
from omnireid.errors import DataError, NonFiniteError, UsageError
from omnireid.losses import WeightedLoss
from omnireid.progress import progress_bar

logger = logging.getLogger(__name__)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteLossError(NonFiniteError):
    """The loss, a gradient or a BatchNorm statistic became NaN or infinite; training stopped
    (the message says where and what was kept)."""


@dataclass
class EpochStats:
    """Means over the epoch's steps: ``loss`` (weighted total), ``parts`` (each loss), ``acc``
    (identity accuracy of the logits, 0 when the model has none), ``images`` seen, ``seconds``
    (wall time) and ``cpu_seconds`` (CPU time of this process, all its threads; loader workers
    not included)."""

    loss: float
    acc: float
    parts: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    images: int = 0
    seconds: float = 0.0
    skipped: list[BadImage] = field(default_factory=list)
    cpu_seconds: float = 0.0


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``amp`` in (``bf16``, ``fp16``) on ``device``; a no-op for ``none``."""
    if amp == "none":
        return contextlib.nullcontext()
    if amp == "fp16" and device.type == "cpu":
        raise UsageError("train.amp=fp16 needs a GPU; use bf16 on the CPU")
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def _all_finite(tensors: list[torch.Tensor]) -> bool:
    if not tensors:
        return True
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


def _first_non_finite(named: Iterable[tuple[str, torch.Tensor | None]]) -> str:
    for name, t in named:
        if t is not None and not bool(torch.isfinite(t).all()):
            return name
    return "?"


def _grad_norm(params: list[torch.Tensor], grad_clip: float) -> torch.Tensor:
    """Total gradient norm (clipping to ``grad_clip`` when > 0): NaN/inf when any gradient is."""
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return torch.zeros(())
    if grad_clip > 0:
        return nn.utils.clip_grad_norm_(with_grad, grad_clip)
    total_norm = getattr(nn.utils, "get_total_norm", None)  # torch >= 2.6: one fused pass
    if total_norm is not None:
        return total_norm([p.grad for p in with_grad])
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad.detach()) for p in with_grad]))


def batchnorm_statistics(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The running mean/variance buffers of every BatchNorm layer of ``model``."""
    out = []
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            for attr in ("running_mean", "running_var"):
                buf = getattr(module, attr, None)
                if buf is not None:
                    out.append((f"{name}.{attr}", buf))
    return out


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    criterion: WeightedLoss,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    epoch: int,
    amp: str = "none",
    scaler: torch.amp.GradScaler | None = None,
    channels_last: bool = False,
    grad_clip: float = 0.0,
    max_steps: int = 0,
    dist_info: DistInfo | None = None,
    progress: bool = True,
    on_step=None,
    report_every: int = 0,
    on_report: Callable[[dict[str, Any]], None] | None = None,
) -> EpochStats:
    """Train for one pass over ``loader`` (a loader of :class:`omnireid.data.Batch`).

    ``on_report``, when given with ``report_every`` > 0, is called after every ``report_every``
    batches with the running means so far: ``epoch``, ``step`` (batches done), ``steps`` (in the
    epoch), ``loss``, ``acc``, ``lr``, ``images_per_s``, ``seconds`` (so far) and
    ``epoch_eta_s`` (the seconds this epoch still needs at the speed so far).

    Unreadable images the loader skipped (``on_error="skip"``) are listed in
    ``EpochStats.skipped``; a batch left empty by them is passed over.

    Raises:
        NonFiniteLossError: as soon as the loss or a gradient is NaN/inf (before the optimiser
            step, so the weights stay as they were), or a BatchNorm statistic became NaN/inf
            (after the step that made it so); under DDP every rank stops together.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    total = max_steps if max_steps > 0 else len(loader)  # type: ignore[arg-type]
    bar = progress_bar(total=total, desc=f"epoch {epoch + 1}", unit="batch", enabled=progress)
    sums = {"loss": 0.0, "correct": 0.0}
    part_sums: dict[str, float] = {}
    steps = images = 0
    skipped: list[BadImage] = []
    params = [p for g in optimizer.param_groups for p in g["params"]]
    module = model.module if hasattr(model, "module") else model
    bn_stats = batchnorm_statistics(module)

    def stop(what: str, step: int) -> None:
        raise NonFiniteLossError(f"{what} at epoch {epoch + 1}, step {step + 1}")

    try:
        for step, batch in enumerate(loader):
            if max_steps and step >= max_steps:
                break
            skipped.extend(batch.skipped)
            if len(batch) == 0:
                continue
            x = batch.images.to(device, non_blocking=True)
            pids = batch.pids.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast_context(device, amp):
                out = model(x)
            losses = criterion(out, pids)
            loss = losses.total
            value = float(loss.detach())
            bad = not math.isfinite(value)
            if dist_info is not None:
                bad = broadcast_flag(bad, dist_info)
            if bad:
                stop(f"loss is {value}", step)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:  # the scaler skips steps with non-finite gradients itself
                scaler.scale(loss).backward()
                if grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], grad_clip)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                norm = _grad_norm(params, grad_clip)
                bad = not bool(torch.isfinite(norm))
                if dist_info is not None:
                    bad = broadcast_flag(bad, dist_info)
                if bad:
                    name = _first_non_finite((n, p.grad) for n, p in module.named_parameters())
                    stop(f"the gradient of {name} is not finite (loss {value:.4g})", step)
                optimizer.step()
            if not _all_finite([b for _, b in bn_stats]):
                stop(f"BatchNorm statistic {_first_non_finite(bn_stats)} is not finite", step)
            n = x.shape[0]
            steps += 1
            images += n
            sums["loss"] += value
            for k, v in losses.parts.items():
                part_sums[k] = part_sums.get(k, 0.0) + float(v.detach())
            if out.logits is not None:
                sums["correct"] += float((out.logits.detach().argmax(1) == pids).float().mean())
            bar.update(1)
            bar.set_postfix(loss=f"{sums['loss'] / steps:.4f}", acc=f"{100 * sums['correct'] / steps:.1f}%",
                            lr=f"{optimizer.param_groups[0]['lr']:.2e}", refresh=False)
            if on_step is not None:
                on_step(epoch, step, value)
            if on_report is not None and report_every > 0 and steps % report_every == 0 and steps < total:
                seconds = time.perf_counter() - start
                on_report({"epoch": epoch, "step": steps, "steps": total, "loss": sums["loss"] / steps,
                           "acc": sums["correct"] / steps, "lr": optimizer.param_groups[0]["lr"],
                           "images_per_s": images / max(seconds, 1e-9), "seconds": seconds,
                           "epoch_eta_s": seconds / steps * (total - steps)})
    finally:
        bar.close()
    if steps == 0:
        if skipped:
            raise DataError(f"no training image of epoch {epoch + 1} could be read ({len(skipped)} "
                            f"unreadable, e.g. {skipped[0].path}: {skipped[0].reason})")
        raise DataError("the training loader produced no batch: the training set is smaller than one "
                        "batch (lower data.batch_size or data.num_instances)")
    return EpochStats(
        loss=sums["loss"] / steps,
        acc=sums["correct"] / steps,
        parts={k: v / steps for k, v in part_sums.items()},
        steps=steps,
        images=images,
        seconds=time.perf_counter() - start,
        skipped=skipped,
        cpu_seconds=time.process_time() - cpu_start,
    )


__all__ = ["AMP_DTYPES", "EpochStats", "NonFiniteLossError", "autocast_context", "batchnorm_statistics",
           "train_one_epoch"]
