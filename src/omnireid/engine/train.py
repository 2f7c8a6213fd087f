"""One training epoch: forward under autocast, loss, backward, clipping, optimiser step."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from omnireid.engine.ddp import DistInfo, broadcast_flag
from omnireid.losses import WeightedLoss

logger = logging.getLogger(__name__)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stopped (the message says where and what was kept)."""


@dataclass
class EpochStats:
    """Means over the epoch's steps: ``loss`` (weighted total), ``parts`` (each loss), ``acc``
    (identity accuracy of the logits, 0 when the model has none), ``images`` seen and ``seconds``."""

    loss: float
    acc: float
    parts: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    images: int = 0
    seconds: float = 0.0


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``amp`` in (``bf16``, ``fp16``) on ``device``; a no-op for ``none``."""
    if amp == "none":
        return contextlib.nullcontext()
    if amp == "fp16" and device.type == "cpu":
        raise ValueError("train.amp=fp16 needs a GPU; use bf16 on the CPU")
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


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
) -> EpochStats:
    """Train for one pass over ``loader`` (a loader of :class:`omnireid.data.Batch`).

    Raises:
        NonFiniteLossError: as soon as the loss is NaN/inf (before the optimiser step, so the
            weights stay as they were); under DDP every rank stops together.
    """
    import time

    start = time.perf_counter()
    total = max_steps if max_steps > 0 else len(loader)  # type: ignore[arg-type]
    bar = tqdm(total=total, desc=f"epoch {epoch + 1}", unit="batch", disable=not progress, leave=False,
               dynamic_ncols=True)
    sums = {"loss": 0.0, "correct": 0.0}
    part_sums: dict[str, float] = {}
    steps = images = 0
    params = [p for g in optimizer.param_groups for p in g["params"]]
    try:
        for step, batch in enumerate(loader):
            if max_steps and step >= max_steps:
                break
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
                raise NonFiniteLossError(f"loss is {value} at epoch {epoch + 1}, step {step + 1}")
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                if grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], grad_clip)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                if grad_clip > 0:
                    nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], grad_clip)
                optimizer.step()
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
    finally:
        bar.close()
    if steps == 0:
        raise RuntimeError("the training loader produced no batch: the training set is smaller than one "
                           "batch (lower data.batch_size or data.num_instances)")
    return EpochStats(
        loss=sums["loss"] / steps,
        acc=sums["correct"] / steps,
        parts={k: v / steps for k, v in part_sums.items()},
        steps=steps,
        images=images,
        seconds=time.perf_counter() - start,
    )


__all__ = ["AMP_DTYPES", "EpochStats", "NonFiniteLossError", "autocast_context", "train_one_epoch"]
