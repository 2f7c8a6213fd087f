"""``fit(config)``: a whole training run from a recipe.

Output folder (``train.output_dir``)::

    config.yaml     the resolved recipe
    metrics.jsonl   one record per epoch (loss, accuracy, lr, evaluation when done)
    last.pt         checkpoint after the latest epoch (resume from here)
    best.pt         checkpoint of the best epoch (highest mAP on the first target; lowest loss
                    when the run does not evaluate)
    model.pth       final weights in omnireid's layout (``create_model(..., weights=...)``)
    curves.png      loss/accuracy/rank-1/mAP curves
    summary.json    final metrics, best epoch, timings
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from omnireid.config import Config, DataConfig, LossConfig, OptimConfig, SchedConfig, TrainConfig
from omnireid.engine.checkpoint import (
    BEST,
    LAST,
    atomic_torch_save,
    find_resume,
    load_checkpoint,
    rng_state,
    set_rng_state,
)
from omnireid.engine.ddp import (
    DistInfo,
    all_gather_objects,
    all_reduce_mean,
    barrier,
    cleanup_distributed,
    init_distributed,
)
from omnireid.engine.evaluate import ModelEvaluation, evaluate_model
from omnireid.engine.metrics_log import MetricsLogger, plot_curves
from omnireid.engine.optim import EpochLR, build_optimizer, set_trainable
from omnireid.engine.train import NonFiniteLossError, train_one_epoch
from omnireid.losses import build_loss

logger = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What a run produced.

    ``final``: per target dataset, the metrics of the last evaluation (values in [0, 1]).
    ``history``: the per-epoch records (as in ``metrics.jsonl``).
    """

    output_dir: Path
    epochs: int
    final: dict[str, dict[str, Any]]
    best_epoch: int | None
    history: list[dict[str, Any]]
    seconds: float
    evaluations: dict[str, ModelEvaluation] = field(default_factory=dict, repr=False)
    model: nn.Module | None = field(default=None, repr=False)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally ask for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


# ---------------------------------------------------------------------------------------------
# Steps shared by fit() and the architecture search (omnireid.engine.nas): each takes the one
# recipe section it needs.


def prepare_process(train: TrainConfig) -> None:
    """Thread count and seeds of a run (``train.num_threads``, ``train.seed``, ``deterministic``)."""
    if train.num_threads > 0:
        torch.set_num_threads(train.num_threads)
    seed_everything(train.seed, train.deterministic)


def _load_one(name: str, data: DataConfig, combineall: bool):
    from omnireid.data import load_dataset

    options = dict(data.synthetic) if name.startswith("synthetic") else {}
    return load_dataset(name, data.root, combineall=combineall, **options)


def load_sources(data: DataConfig):
    """The (combined) training set of ``data.sources``."""
    from omnireid.data import combine_datasets

    parts = [_load_one(n, data, data.combineall) for n in data.sources]
    return parts[0] if len(parts) == 1 else combine_datasets(parts)


def load_train_set(cfg: Config):
    """The (combined) training set of ``data.sources``."""
    return load_sources(cfg.data)


def load_targets(cfg: Config) -> list:
    """The evaluation sets of ``data.targets`` (without ``combineall``)."""
    return [_load_one(name, cfg.data, False) for name in cfg.data.targets]


def build_loader(data: DataConfig, samples, *, seed: int, rank: int = 0, world_size: int = 1,
                 pin_memory: bool = False):
    """The training loader of ``data`` over ``samples`` (one epoch per ``set_epoch``)."""
    from omnireid.data import build_train_loader

    return build_train_loader(
        samples, height=data.height, width=data.width, batch_size=data.batch_size,
        sampler=data.sampler, num_instances=data.num_instances, num_workers=data.num_workers,
        seed=seed, rank=rank, world_size=world_size, random_flip=data.random_flip,
        random_crop=data.random_crop, random_erase=data.random_erase,
        color_jitter=data.color_jitter, persistent_workers=False, pin_memory=pin_memory,
    )


def build_criterion(loss: LossConfig):
    """The weighted loss of ``loss``."""
    return build_loss({"softmax": loss.softmax, "triplet": loss.triplet},
                      label_smooth=loss.label_smooth, margin=loss.margin)


def build_weight_optimizer(model: nn.Module, o: OptimConfig, skip=()) -> torch.optim.Optimizer:
    """The optimiser of ``optim`` over the model's parameters (except ``skip``)."""
    return build_optimizer(
        model, o.name, o.lr, weight_decay=o.weight_decay, momentum=o.momentum, nesterov=o.nesterov,
        betas=(o.adam_beta1, o.adam_beta2), rmsprop_alpha=o.rmsprop_alpha, new_layers=o.new_layers,
        new_layers_lr_mult=o.new_layers_lr_mult, skip=skip)


def build_schedule(optimizer, s: SchedConfig, base_lr: float, max_epoch: int) -> EpochLR:
    """The per-epoch learning-rate schedule of ``sched`` (``min_lr`` relative to ``base_lr``)."""
    return EpochLR(optimizer, s.name, max_epoch, stepsize=s.stepsize, gamma=s.gamma,
                   warmup_epochs=s.warmup_epochs, warmup_factor=s.warmup_factor,
                   min_factor=s.min_lr / base_lr)


def build_model_from_config(cfg: Config, num_classes: int) -> nn.Module:
    """The network of ``cfg.model`` with a classifier for ``num_classes`` identities."""
    from omnireid.models import create_model

    kw: dict[str, Any] = {}
    if cfg.model.dropout > 0:
        kw["dropout"] = cfg.model.dropout
    name = cfg.model.name
    if cfg.model.arch is not None:
        if name != "osnet":
            logger.info("model.arch given: building 'osnet' from %s (model.name %r is a label)", cfg.model.arch, name)
        name = "osnet"
        kw["arch"] = cfg.model.arch
    return create_model(name, num_classes=num_classes, weights=cfg.model.weights, **kw)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def weights_digest(model: nn.Module) -> str:
    """sha256 of all parameters and buffers (to compare replicas)."""
    h = hashlib.sha256()
    for k, v in sorted(_unwrap(model).state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _should_eval(epoch: int, max_epoch: int, eval_freq: int) -> bool:
    if eval_freq < 0:
        return False
    last = epoch + 1 == max_epoch
    return last or (eval_freq > 0 and (epoch + 1) % eval_freq == 0)


def fit(config: Config, *, resume: str | os.PathLike | None = None) -> FitResult:
    """Train as ``config`` says; resume from a checkpoint file or run folder when given.

    Under ``torchrun`` every process calls ``fit``; rank 0 writes the outputs and evaluates.

    Raises:
        NonFiniteLossError: the loss became NaN/inf; the message names the last good checkpoint.
    """
    cfg = config
    info = init_distributed(cfg.train.device)
    try:
        return _fit(cfg, info, resume)
    finally:
        cleanup_distributed()


def _fit(cfg: Config, info: DistInfo, resume: str | os.PathLike | None) -> FitResult:
    t0 = time.perf_counter()
    out_dir = Path(cfg.train.output_dir)
    prepare_process(cfg.train)
    device = info.device
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        cfg.save(out_dir / "config.yaml")

    # data: rank 0 first (it may generate the synthetic sets), then the others
    if info.is_main:
        train_set = load_train_set(cfg)
    barrier(info)
    if not info.is_main:
        train_set = load_train_set(cfg)
    num_classes = train_set.num_train_pids
    logger.info("training on %s: %d images, %d identities", train_set.name, len(train_set.train), num_classes)

    model = build_model_from_config(cfg, num_classes).to(device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    torch.manual_seed(cfg.train.seed + 1000 * info.rank)  # augmentation/dropout streams per rank

    loader = build_loader(cfg.data, train_set.train, seed=cfg.train.seed, rank=info.rank,
                          world_size=info.world_size, pin_memory=device.type == "cuda")
    criterion = build_criterion(cfg.loss)
    o = cfg.optim
    optimizer = build_weight_optimizer(model, o)
    scheduler = build_schedule(optimizer, cfg.sched, o.lr, cfg.train.max_epoch)
    scaler = torch.amp.GradScaler(device.type) if cfg.train.amp == "fp16" else None

    start_epoch = 0
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"score": None, "epoch": None}
    metrics_log = MetricsLogger(out_dir, tensorboard=cfg.train.tensorboard, enabled=info.is_main)
    if resume is not None:
        path = find_resume(resume)
        state = load_checkpoint(path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state.get("scheduler", {}))
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch = int(state["epoch"])
        history = list(state.get("history", []))
        best = dict(state.get("best", best))
        if info.rank == 0:
            set_rng_state(state["rng"], loader.generator)
        else:  # only rank 0's generators are stored; other ranks continue from a fresh stream
            torch.manual_seed(cfg.train.seed + 1000 * info.rank + 7 * start_epoch)
            loader.generator.manual_seed(cfg.train.seed + 7919 * info.rank + 7 * start_epoch)
        metrics_log.rewrite(history)
        logger.info("resumed from %s at epoch %d", path, start_epoch + 1)
        if start_epoch >= cfg.train.max_epoch:
            logger.warning("checkpoint %s already finished %d epochs", path, start_epoch)

    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                        find_unused_parameters=o.fixbase_epochs > start_epoch)

    targets: list | None = None
    evaluations: dict[str, ModelEvaluation] = {}
    last_path = out_dir / LAST
    progress = cfg.train.progress and info.is_main
    for epoch in range(start_epoch, cfg.train.max_epoch):
        epoch_start = time.perf_counter()
        loader.sampler.set_epoch(epoch)
        lrs = scheduler.step(epoch)
        fixbase = epoch < o.fixbase_epochs
        set_trainable(model, o.open_layers if fixbase else None)
        try:
            stats = train_one_epoch(
                model, loader, criterion, optimizer, device=device, epoch=epoch, amp=cfg.train.amp,
                scaler=scaler, channels_last=cfg.train.channels_last, grad_clip=o.grad_clip,
                max_steps=cfg.train.max_steps_per_epoch, dist_info=info if info.distributed else None,
                progress=progress)
        except NonFiniteLossError as exc:
            kept = (f"the last good checkpoint is {last_path} (after epoch {epoch})"
                    if last_path.is_file() and epoch > 0 else "no checkpoint was written before it")
            metrics_log.close()
            raise NonFiniteLossError(f"{exc}; training stopped, {kept}. Lower optim.lr or set "
                                     f"optim.grad_clip.") from None
        record: dict[str, Any] = {
            "epoch": epoch, "loss": all_reduce_mean(stats.loss, info), "acc": all_reduce_mean(stats.acc, info),
            "parts": stats.parts, "lr": lrs[0], "fixbase": fixbase, "steps": stats.steps,
            "images_per_s": stats.images * info.world_size / max(stats.seconds, 1e-9),
            "epoch_seconds": stats.seconds,
        }
        score = -record["loss"] if cfg.train.eval_freq < 0 else None
        if _should_eval(epoch, cfg.train.max_epoch, cfg.train.eval_freq):
            if info.is_main:
                if targets is None:
                    targets = load_targets(cfg)
                last_epoch = epoch + 1 == cfg.train.max_epoch
                evaluations = {
                    ds.name: evaluate_model(
                        _unwrap(model), ds, height=cfg.data.height, width=cfg.data.width,
                        batch_size=cfg.test.batch_size, dist_metric=cfg.test.dist_metric,
                        normalize_feature=cfg.test.normalize_feature, device=device,
                        channels_last=cfg.train.channels_last, keep_distmat=last_epoch, progress=progress)
                    for ds in targets
                }
                record["eval"] = {n: {k: v for k, v in e.metrics.items() if isinstance(v, (int, float))}
                                  for n, e in evaluations.items()}
                first = next(iter(record["eval"].values()), None)
                score = first["mAP"] if first else None
            barrier(info)
        before = history[-1]["elapsed_s"] if history else 0.0
        record["elapsed_s"] = before + time.perf_counter() - epoch_start
        history.append(record)
        metrics_log.log(record)
        improved = score is not None and (best["score"] is None or score > best["score"])
        if improved:
            best = {"score": score, "epoch": epoch}
        if info.is_main:
            state = {
                "format": 1,
                "epoch": epoch + 1,
                "model": _unwrap(model).state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else {},
                "sampler": {"seed": cfg.train.seed, "next_epoch": epoch + 1},
                "rng": rng_state(loader.generator),
                "best": best,
                "history": history,
                "num_classes": num_classes,
                "config": cfg.to_dict(),
            }
            atomic_torch_save(state, last_path)
            if improved:
                atomic_torch_save(state, out_dir / BEST)
        logger.info("epoch %d/%d loss %.4f acc %.3f lr %.2e", epoch + 1, cfg.train.max_epoch,
                    record["loss"], record["acc"], record["lr"])

    set_trainable(model, None)
    model.eval()
    result_final = history[-1].get("eval", {}) if history else {}
    if info.distributed:
        # DDP syncs buffers before each forward, so the last forward leaves each rank with its own
        # BatchNorm statistics: adopt rank 0's (the ones saved) everywhere.
        import torch.distributed as dist

        for buf in _unwrap(model).buffers():
            dist.broadcast(buf, 0)
    digests = all_gather_objects(weights_digest(model), info) if info.distributed else []
    if info.is_main:
        from omnireid.models.weights import save_weights

        save_weights(_unwrap(model), out_dir / "model.pth")
        if cfg.train.save_curves and history:
            plot_curves(history, out_dir / "curves.png")
        summary = {
            "final": result_final, "best_epoch": best["epoch"], "epochs": len(history),
            "seconds": time.perf_counter() - t0, "world_size": info.world_size,
            "num_classes": num_classes, "train_images": len(train_set.train),
        }
        if digests:
            summary["rank_weight_sha256"] = digests
        tmp = out_dir / ".summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2))
        os.replace(tmp, out_dir / "summary.json")
    metrics_log.close()
    if digests and len(set(digests)) != 1:
        raise RuntimeError(f"replicas disagree on the weights after training: {digests}")
    return FitResult(out_dir, len(history), result_final, best["epoch"], history,
                     time.perf_counter() - t0, evaluations, _unwrap(model))


__all__ = ["FitResult", "NonFiniteLossError", "build_criterion", "build_loader", "build_model_from_config",
           "build_schedule", "build_weight_optimizer", "fit", "load_sources", "load_targets",
           "load_train_set", "prepare_process", "seed_everything", "weights_digest"]
