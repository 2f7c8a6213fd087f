"""``fit(config)``: a whole training run from a recipe.

Output folder (``train.output_dir``)::

    config.yaml          the resolved recipe
    metrics.jsonl        one record per epoch (loss, accuracy, lr, times, evaluation when done)
    last.pt              checkpoint after the latest epoch (resume from here)
    best.pt              checkpoint of the best epoch (highest mAP on the first target; lowest
                         loss when the run does not evaluate)
    model.pth            final weights in omnireid's layout (``create_model(..., weights=...)``)
    curves.png           loss/accuracy/rank-1/mAP curves
    summary.json         final metrics per target (by display name), best epoch, timings
    skipped_images.tsv   unreadable images left out (``data.on_bad_image: skip``), if any
    .omnireid.lock       who holds (or last held) the folder

The folder belongs to one run (:mod:`omnireid.engine.run_folder`): a second run into it is
refused while the first holds it, and a run into a folder that holds another run's results is
refused unless it resumes that run or overwrites it. A resumed run checks its settings against
the checkpoint before it writes anything. Checkpoints never hold NaN/inf values: the epoch that
would produce one stops the run, and the message names the last good checkpoint.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from omnireid.config import (
    Config,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    SchedConfig,
    TrainConfig,
)
from omnireid.data import build_train_loader, combine_datasets
from omnireid.data.datasets.synthetic import is_synthetic
from omnireid.data.spec import load_dataset_spec, parse_dataset_spec
from omnireid.engine.checkpoint import (
    BEST,
    LAST,
    atomic_torch_save,
    check_finite,
    describe_changes,
    find_resume,
    load_checkpoint,
    non_finite_entries,
    resume_changes,
    rng_state,
    set_rng_state,
)
from omnireid.engine.ddp import (
    DistInfo,
    all_gather_objects,
    all_reduce_mean,
    broadcast_flag,
    cleanup_distributed,
    init_distributed,
)
from omnireid.engine.evaluate import ModelEvaluation, check_evaluable, evaluate
from omnireid.engine.metrics_log import MetricsLogger, plot_curves
from omnireid.engine.optim import EpochLR, build_optimizer, set_trainable
from omnireid.engine.run_folder import RunFolder
from omnireid.engine.train import NonFiniteLossError, train_one_epoch
from omnireid.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    OmnireidError,
    RunFolderError,
    UsageError,
)
from omnireid.files import write_json, write_text
from omnireid.losses import build_loss
from omnireid.models import create_model
from omnireid.models.weights import save_weights

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
    resumed_changes: list[tuple[str, Any, Any]] = field(default_factory=list, repr=False)
    skipped_images: dict[str, str] = field(default_factory=dict, repr=False)


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


def _specs(items: list) -> list:
    return [parse_dataset_spec(item) for item in items]


def _load(spec, data: DataConfig, combineall: bool = False):
    defaults = dict(data.synthetic) if is_synthetic(spec.name) else {}
    return load_dataset_spec(spec, root=data.root, combineall=combineall, defaults=defaults)


def load_sources(data: DataConfig):
    """The (combined) training set of ``data.sources``."""
    parts = [_load(spec, data, data.combineall) for spec in _specs(data.sources)]
    return parts[0] if len(parts) == 1 else combine_datasets(parts)


def load_targets(data: DataConfig) -> list:
    """The evaluation sets of ``data.targets`` (without ``combineall``), each under its display
    name; each must have query and gallery images."""
    out = []
    for i, spec in enumerate(_specs(data.targets)):
        dataset = _load(spec, data)
        check_evaluable(dataset, f"data.targets[{i}]")
        out.append(dataset)
    return out


def build_loader(data: DataConfig, samples, *, seed: int, rank: int = 0, world_size: int = 1,
                 pin_memory: bool = False, name: str = "the training set"):
    """The training loader of ``data`` over ``samples`` (one epoch per ``set_epoch``); a set
    that cannot fill the batches is an error that names it (``name``) and the settings."""
    settings = f"data.sampler={data.sampler}, data.batch_size={data.batch_size}" + (
        f", data.num_instances={data.num_instances}" if data.sampler == "identity" else "")
    if len(samples) < data.batch_size * world_size:
        raise DataError(f"{name} has {len(samples)} images, fewer than one batch "
                        f"({settings}{f', {world_size} processes' if world_size > 1 else ''}): "
                        "lower data.batch_size")
    try:
        return build_train_loader(
            samples, height=data.height, width=data.width, batch_size=data.batch_size,
            sampler=data.sampler, num_instances=data.num_instances, num_workers=data.num_workers,
            seed=seed, rank=rank, world_size=world_size, random_flip=data.random_flip,
            random_crop=data.random_crop, random_erase=data.random_erase,
            color_jitter=data.color_jitter, persistent_workers=False, pin_memory=pin_memory,
            on_error="skip" if data.on_bad_image == "skip" else "raise",
        )
    except UsageError as exc:
        raise UsageError(f"{name}: {exc} ({settings})") from None


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


def build_model(m: ModelConfig, num_classes: int) -> nn.Module:
    """The network of the ``model`` section with a classifier for ``num_classes`` identities."""
    kw: dict[str, Any] = {}
    if m.dropout > 0:
        kw["dropout"] = m.dropout
    name = m.name
    if m.arch is not None:
        if name != "osnet":
            logger.info("model.arch given: building 'osnet' from %s (model.name %r is a label)", m.arch, name)
        name = "osnet"
        kw["arch"] = m.arch
    return create_model(name, num_classes=num_classes, weights=m.weights, **kw)


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


def fit(
    config: Config,
    *,
    resume: str | os.PathLike | None = None,
    overwrite: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    on_batch: Callable[[dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train as ``config`` says.

    Args:
        resume: continue from a checkpoint file or run folder. Settings that differ from the
            checkpoint's are applied from the next epoch when they may change mid-run (learning
            rate, weight decay, schedule, epochs, evaluation, ... see
            :data:`omnireid.engine.checkpoint.RESUMABLE_CHANGES`); any other difference refuses
            the resume before anything is written.
        overwrite: replace the results of a previous run in the output folder.
        on_epoch: called on rank 0 after every epoch with its record (as in ``metrics.jsonl``,
            plus ``max_epoch`` and ``eta_s``, the estimated seconds left).
        on_start: called on rank 0 once the data is read and before the first epoch with
            ``model``, ``sources``, ``train_images``, ``num_classes``, ``targets`` (display
            names), ``start_epoch``, ``max_epoch``, ``resumed_from`` and ``changes`` (the
            applied setting changes of a resume).
        on_batch: called on rank 0 every ``train.print_freq`` batches (when that is above 0)
            with the running means of the epoch under way (see
            :func:`omnireid.engine.train.train_one_epoch`), plus ``max_epoch`` and ``eta_s``
            (the seconds the whole run still needs).

    Under ``torchrun`` every process calls ``fit``; rank 0 writes the outputs and evaluates.

    Raises:
        RunFolderError: the output folder is in use, or holds another run.
        ConfigError: ``resume`` with settings that cannot change in the middle of a run.
        NonFiniteLossError: the loss, a gradient or a BatchNorm statistic became NaN/inf; the
            message names the last good checkpoint.
        KeyboardInterrupt: with a message naming the last checkpoint.
    """
    cfg, t0 = config, time.perf_counter()
    out_dir = Path(cfg.train.output_dir)
    folder = RunFolder(out_dir)
    info = init_distributed(cfg.train.device)
    try:
        resume_path, state, changes = _on_main(info, lambda: _claim(folder, cfg, resume, overwrite)) \
            or (None, None, [])
        try:
            return _train(cfg, info, t0, out_dir, resume, resume_path, state, changes, on_epoch, on_start,
                          on_batch)
        finally:
            folder.release()
    finally:
        cleanup_distributed()


def _on_main(info: DistInfo, work: Callable[[], Any]) -> Any:
    """Run ``work`` on rank 0; every rank raises if it failed (no rank waits forever)."""
    result, error = None, None
    if info.is_main:
        try:
            result = work()
        except OmnireidError as exc:
            error = exc
    if broadcast_flag(error is not None, info):
        raise error if error is not None else RunFolderError("rank 0 stopped; see its message")
    return result


def _check_resume(state: dict[str, Any], cfg: Config, path: Path) -> list[tuple[str, Any, Any]]:
    """The allowed setting changes of a resume; raise naming the refused ones."""
    saved = state.get("config")
    if not isinstance(saved, dict):
        return []
    allowed, refused = resume_changes(saved, cfg.to_dict(), Config().to_dict())
    if refused:
        raise ConfigError(
            f"--resume {path}: these settings differ from the checkpoint's and cannot change in the middle "
            f"of a run: {describe_changes(refused)}. Resume with the run's own settings, or start a new run "
            "(another output folder, or --overwrite)", [k for k, _, _ in refused])
    if allowed:
        logger.info("resuming with changed settings (applied from epoch %d): %s", int(state["epoch"]) + 1,
                    describe_changes(allowed))
    return allowed


def _claim(folder: RunFolder, cfg: Config, resume, overwrite: bool):
    """Lock the folder, read and check the checkpoint to resume, and refuse to clobber another
    run. Nothing is written (but the lock file) before these checks pass."""
    folder.acquire()
    try:
        path, state, changes = None, None, []
        if resume is not None:
            path = find_resume(resume)
            state = load_checkpoint(path)
            check_finite(state, path)
            changes = _check_resume(state, cfg, path)
        folder.check_new_run(overwrite, path)
        return path, state, changes
    except BaseException:
        folder.release()
        raise


def _eval_epochs_left(epoch: int, cfg: Config) -> int:
    return sum(_should_eval(e, cfg.train.max_epoch, cfg.train.eval_freq) for e in range(epoch + 1, cfg.train.max_epoch))


def _eta(history: list[dict[str, Any]], epoch: int, cfg: Config) -> float:
    """Seconds left: mean training time per epoch and mean evaluation time, times what is left."""
    train = [r["epoch_seconds"] for r in history]
    evals = [r["eval_seconds"] for r in history if r.get("eval_seconds")]
    left = cfg.train.max_epoch - epoch - 1
    return left * sum(train) / len(train) + _eval_epochs_left(epoch, cfg) * (sum(evals) / len(evals) if evals else 0.0)


def _eta_after(history: list[dict[str, Any]], report: dict[str, Any], epoch: int, cfg: Config) -> float:
    """Seconds the epochs after ``epoch`` still need, from the finished epochs (or, in the first
    one, from the speed so far)."""
    if history:
        return _eta(history, epoch, cfg)
    per_epoch = report["seconds"] / report["step"] * report["steps"]
    return (cfg.train.max_epoch - epoch - 1) * per_epoch


@dataclass
class _Run:
    """What a training run holds between its steps (:func:`_build` makes it, the other steps
    read and update it)."""

    cfg: Config
    info: DistInfo
    out_dir: Path
    train_set: Any
    targets: list
    num_classes: int
    model: nn.Module
    loader: Any
    criterion: Any
    optimizer: torch.optim.Optimizer
    scheduler: EpochLR
    scaler: Any
    metrics_log: MetricsLogger
    changes: list[tuple[str, Any, Any]]
    resume_path: Path | None = None
    start_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"score": None, "epoch": None})
    last_good: tuple[Path, int] | None = None
    evaluations: dict[str, ModelEvaluation] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.info.device

    @property
    def progress(self) -> bool:
        return self.cfg.train.progress and self.info.is_main


def _train(cfg: Config, info: DistInfo, t0: float, out_dir: Path, resume, resume_path, state, changes,
           on_epoch, on_start, on_batch=None) -> FitResult:
    """The run in named steps: build, resume, start, then per epoch train, evaluate and
    checkpoint; finish."""
    run = _build(cfg, info, out_dir, changes)
    if resume is not None:
        _resume(run, resume, resume_path, state)
    _start(run, on_start)
    epoch = run.start_epoch
    try:
        for epoch in range(run.start_epoch, cfg.train.max_epoch):
            epoch_start = time.perf_counter()
            record, new_bad = _train_epoch(run, epoch, on_batch)
            score = _evaluate(run, epoch, record, new_bad)
            _end_epoch(run, epoch, record, new_bad, score, epoch_start, on_epoch)
    except NonFiniteLossError as exc:
        run.metrics_log.close()
        last_good = _on_disk(out_dir / LAST) or run.last_good
        raise NonFiniteLossError(f"{exc}; training stopped. {_last_good_text(last_good)} Lower optim.lr "
                                 "or set optim.grad_clip (a resumed run may change both).") from None
    except KeyboardInterrupt:
        run.metrics_log.close()
        last_good = _on_disk(out_dir / LAST) or run.last_good
        raise KeyboardInterrupt(f"interrupted in epoch {epoch + 1} of {cfg.train.max_epoch}. "
                                f"{_last_good_text(last_good)}") from None
    return _finish(run, t0)


def _build(cfg: Config, info: DistInfo, out_dir: Path, changes) -> _Run:
    """Step 1: the data (rank 0 first: it may generate the synthetic sets, and it reads the
    targets before training so that a bad target stops the run now), the model, the loader, the
    loss, the optimiser and the schedule."""
    prepare_process(cfg.train)
    will_eval = cfg.train.eval_freq >= 0
    train_set, targets = _on_main(info, lambda: (load_sources(cfg.data), load_targets(cfg.data) if will_eval else [])) \
        or (None, [])
    if not info.is_main:
        train_set = load_sources(cfg.data)
    num_classes = train_set.num_train_pids
    logger.info("training on %s: %d images, %d identities", train_set.name, len(train_set.train), num_classes)

    model = build_model(cfg.model, num_classes).to(info.device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    torch.manual_seed(cfg.train.seed + 1000 * info.rank)  # augmentation/dropout streams per rank
    loader = _train_loader(cfg, train_set, info, info.device)
    optimizer = build_weight_optimizer(model, cfg.optim)
    return _Run(
        cfg=cfg, info=info, out_dir=out_dir, train_set=train_set, targets=targets, num_classes=num_classes,
        model=model, loader=loader, criterion=build_criterion(cfg.loss), optimizer=optimizer,
        scheduler=build_schedule(optimizer, cfg.sched, cfg.optim.lr, cfg.train.max_epoch),
        scaler=torch.amp.GradScaler(info.device.type) if cfg.train.amp == "fp16" else None,
        metrics_log=MetricsLogger(out_dir, tensorboard=cfg.train.tensorboard, enabled=info.is_main),
        changes=changes)


def _resume(run: _Run, resume, resume_path: Path | None, state: dict | None) -> None:
    """Step 2 (with ``--resume``): the weights, optimiser, schedule, history and random streams
    of the checkpoint rank 0 has checked."""
    cfg, info = run.cfg, run.info
    if state is None:  # ranks > 0 read the checkpoint rank 0 has checked
        resume_path = find_resume(resume)
        state = load_checkpoint(resume_path)
    _restore(state, resume_path, run.model, run.optimizer, run.scheduler, run.scaler)
    run.resume_path = resume_path
    run.start_epoch = int(state["epoch"])
    run.history = list(state.get("history", []))
    run.best = dict(state.get("best", run.best))
    run.last_good = (resume_path, run.start_epoch)
    if info.rank == 0:
        set_rng_state(state["rng"], run.loader.generator)
    else:  # only rank 0's generators are stored; other ranks continue from a fresh stream
        torch.manual_seed(cfg.train.seed + 1000 * info.rank + 7 * run.start_epoch)
        run.loader.generator.manual_seed(cfg.train.seed + 7919 * info.rank + 7 * run.start_epoch)
    run.metrics_log.rewrite(run.history)
    logger.info("resumed from %s at epoch %d", resume_path, run.start_epoch + 1)
    if run.start_epoch >= cfg.train.max_epoch:
        logger.warning("checkpoint %s already finished %d epochs", resume_path, run.start_epoch)


def _start(run: _Run, on_start) -> None:
    """Step 3: wrap the model for DDP, save the settings and tell ``on_start`` (the settings,
    checkpoint, data and model are good: the run starts)."""
    cfg, info = run.cfg, run.info
    if info.distributed:
        run.model = DistributedDataParallel(
            run.model, device_ids=[run.device] if run.device.type == "cuda" else None,
            find_unused_parameters=cfg.optim.fixbase_epochs > run.start_epoch)
    if not info.is_main:
        return
    cfg.save(run.out_dir / "config.yaml")
    if on_start is not None:
        on_start({"model": cfg.model.name, "sources": [spec.label for spec in _specs(cfg.data.sources)],
                  "train_images": len(run.train_set.train), "num_classes": run.num_classes,
                  "targets": [ds.name for ds in run.targets], "start_epoch": run.start_epoch,
                  "max_epoch": cfg.train.max_epoch, "resumed_from": run.resume_path, "changes": run.changes,
                  "output_dir": run.out_dir})


def _train_epoch(run: _Run, epoch: int, on_batch) -> tuple[dict[str, Any], dict[str, str]]:
    """Step 4: one epoch of training; returns its record and the unreadable images it met."""
    cfg, info, o = run.cfg, run.info, run.cfg.optim
    run.loader.sampler.set_epoch(epoch)
    lrs = run.scheduler.step(epoch)
    fixbase = epoch < o.fixbase_epochs
    set_trainable(run.model, o.open_layers if fixbase else None)
    on_report = None
    if on_batch is not None and info.is_main:
        def on_report(r, e=epoch):
            on_batch({**r, "max_epoch": cfg.train.max_epoch,
                      "eta_s": r["epoch_eta_s"] + _eta_after(run.history[-8:], r, e, cfg)})
    stats = train_one_epoch(
        run.model, run.loader, run.criterion, run.optimizer, device=run.device, epoch=epoch, amp=cfg.train.amp,
        scaler=run.scaler, channels_last=cfg.train.channels_last, grad_clip=o.grad_clip,
        max_steps=cfg.train.max_steps_per_epoch, dist_info=info if info.distributed else None,
        progress=run.progress, report_every=cfg.train.print_freq, on_report=on_report)
    record: dict[str, Any] = {
        "epoch": epoch, "loss": all_reduce_mean(stats.loss, info), "acc": all_reduce_mean(stats.acc, info),
        "parts": stats.parts, "lr": lrs[0], "fixbase": fixbase, "steps": stats.steps,
        "images_per_s": stats.images * info.world_size / max(stats.seconds, 1e-9),
        "epoch_seconds": stats.seconds, "epoch_cpu_seconds": stats.cpu_seconds,
    }
    return record, {b.path: b.reason for b in stats.skipped if b.path not in run.skipped}


def _evaluate(run: _Run, epoch: int, record: dict[str, Any], new_bad: dict[str, str]) -> float | None:
    """Step 5: evaluate on the targets when due (rank 0; the others wait). Returns the score that
    picks the best checkpoint: the first target's mAP, or minus the loss without evaluation."""
    cfg, info = run.cfg, run.info
    score = -record["loss"] if cfg.train.eval_freq < 0 else None
    if not _should_eval(epoch, cfg.train.max_epoch, cfg.train.eval_freq):
        return score
    if info.is_main:
        eval_start, eval_cpu_start = time.perf_counter(), time.process_time()
        last_epoch = epoch + 1 == cfg.train.max_epoch
        run.evaluations = {
            ds.name: evaluate(
                _unwrap(run.model), ds, size=(cfg.data.height, cfg.data.width),
                batch_size=cfg.test.batch_size, dist_metric=cfg.test.dist_metric,
                normalize_feature=cfg.test.normalize_feature, device=run.device,
                channels_last=cfg.train.channels_last, keep_distmat=last_epoch, progress=run.progress,
                num_workers=cfg.data.num_workers,
                on_error="skip" if cfg.data.on_bad_image == "skip" else "raise")
            for ds in run.targets
        }
        for e in run.evaluations.values():
            new_bad.update({b.path: b.reason for b in e.skipped if b.path not in run.skipped})
        record["eval"] = {n: {k: v for k, v in e.metrics.items() if isinstance(v, (int, float))}
                          for n, e in run.evaluations.items()}
        first = next(iter(record["eval"].values()), None)
        score = first["mAP"] if first else None
        record["eval_seconds"] = time.perf_counter() - eval_start
        record["eval_cpu_seconds"] = time.process_time() - eval_cpu_start
    broadcast_flag(False, info)  # all ranks wait for the evaluation
    return score


def _end_epoch(run: _Run, epoch: int, record: dict[str, Any], new_bad: dict[str, str], score: float | None,
               epoch_start: float, on_epoch) -> None:
    """Step 6: list the unreadable images, keep the record, write the checkpoint (rank 0) and
    tell ``on_epoch``."""
    cfg, info, out_dir = run.cfg, run.info, run.out_dir
    if new_bad:
        run.skipped.update(new_bad)
        if info.is_main:
            _write_skipped(out_dir, run.skipped)
        logger.warning("%d unreadable image(s) skipped so far (listed in %s)", len(run.skipped),
                       out_dir / "skipped_images.tsv")
    record["skipped_images"] = len(run.skipped)
    before = run.history[-1]["elapsed_s"] if run.history else 0.0
    record["elapsed_s"] = before + time.perf_counter() - epoch_start
    run.history.append(record)
    improved = score is not None and (run.best["score"] is None or score > run.best["score"])
    if improved:
        run.best = {"score": score, "epoch": epoch}
    if info.is_main:
        _save_checkpoint(out_dir, epoch, run.model, run.optimizer, run.scheduler, run.scaler, run.loader, cfg,
                         run.best, run.history, run.num_classes, improved)
        run.last_good = (out_dir / LAST, epoch + 1)
        run.metrics_log.log(record)
        if on_epoch is not None:
            on_epoch({**record, "max_epoch": cfg.train.max_epoch, "eta_s": _eta(run.history[-8:], epoch, cfg)})
    logger.info("epoch %d/%d loss %.4f acc %.3f lr %.2e", epoch + 1, cfg.train.max_epoch,
                record["loss"], record["acc"], record["lr"])


def _finish(run: _Run, t0: float) -> FitResult:
    """Step 7: the same weights on every rank, ``model.pth``, the curves and ``summary.json``."""
    cfg, info, out_dir, history = run.cfg, run.info, run.out_dir, run.history
    set_trainable(run.model, None)
    run.model.eval()
    result_final = history[-1].get("eval", {}) if history else {}
    if info.distributed:
        # DDP syncs buffers before each forward, so the last forward leaves each rank with its own
        # BatchNorm statistics: adopt rank 0's (the ones saved) everywhere.
        for buf in _unwrap(run.model).buffers():
            dist.broadcast(buf, 0)
    digests = all_gather_objects(weights_digest(run.model), info) if info.distributed else []
    if info.is_main:
        save_weights(_unwrap(run.model), out_dir / "model.pth")
        if cfg.train.save_curves and history:
            plot_curves(history, out_dir / "curves.png")
        summary = {
            "final": result_final, "best_epoch": run.best["epoch"], "epochs": len(history),
            "seconds": time.perf_counter() - t0, "world_size": info.world_size,
            "num_classes": run.num_classes, "train_images": len(run.train_set.train),
            "sources": [spec.label for spec in _specs(cfg.data.sources)],
            "targets": [ds.name for ds in run.targets], "skipped_images": len(run.skipped),
        }
        if run.changes:
            summary["resumed_with_changes"] = [{"key": k, "old": a, "new": b} for k, a, b in run.changes]
        if digests:
            summary["rank_weight_sha256"] = digests
        write_json(out_dir / "summary.json", summary)
    run.metrics_log.close()
    if digests and len(set(digests)) != 1:
        raise RuntimeError(f"replicas disagree on the weights after training: {digests}")
    return FitResult(out_dir, len(history), result_final, run.best["epoch"], history,
                     time.perf_counter() - t0, run.evaluations, _unwrap(run.model), run.changes, run.skipped)


def _train_loader(cfg: Config, train_set, info: DistInfo, device: torch.device):
    """The training loader of the run (:func:`build_loader` on this process's share)."""
    return build_loader(cfg.data, train_set.train, seed=cfg.train.seed, rank=info.rank,
                        world_size=info.world_size, pin_memory=device.type == "cuda",
                        name=f"the training set {train_set.name}")


def _restore(state, path: Path, model, optimizer, scheduler, scaler) -> None:
    """Load a checkpoint's states; the optimiser keeps this run's learning rate and weight decay
    (a resumed run may change them)."""
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: does not fit the model of these settings (was the training data "
                              f"changed?): {str(exc).splitlines()[0]}") from None
    fresh = [{k: g[k] for k in ("initial_lr", "weight_decay") if k in g} for g in optimizer.param_groups]
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: its optimiser state does not fit this run ({exc})") from None
    for group, values in zip(optimizer.param_groups, fresh):
        group.update(values)
    scheduler.load_state_dict(state.get("scheduler", {}))
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])


def _save_checkpoint(out_dir: Path, epoch: int, model, optimizer, scheduler, scaler, loader, cfg: Config,
                     best: dict, history: list, num_classes: int, improved: bool) -> None:
    """Write ``last.pt`` (and ``best.pt``), refusing a state that holds NaN/inf."""
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
    bad = non_finite_entries({"model": state["model"], "optimizer": state["optimizer"]})
    if bad:
        raise NonFiniteLossError(f"after epoch {epoch + 1} {len(bad)} tensor(s) of the model or optimiser "
                                 f"state are not finite (e.g. {', '.join(bad[:3])}), so no checkpoint was written")
    atomic_torch_save(state, out_dir / LAST)
    if improved:
        atomic_torch_save(state, out_dir / BEST)


def _on_disk(path: Path) -> tuple[Path, int] | None:
    """``(path, epochs done)`` of the checkpoint at ``path`` when it is readable and finite: what
    is really on disk when a run stops (an interruption can fall between a write and its
    bookkeeping)."""
    if not path.is_file():
        return None
    try:
        state = load_checkpoint(path)
        check_finite(state, path)
    except (OmnireidError, OSError):
        return None
    return path, int(state["epoch"])


def _last_good_text(last_good: tuple[Path, int] | None) -> str:
    if last_good is None:
        return "No checkpoint was written before it."
    path, epochs = last_good
    return (f"The last good checkpoint is {path} ({epochs} epoch(s) done, all values finite); "
            "continue from it with --resume.")


def _write_skipped(out_dir: Path, skipped: dict[str, str]) -> None:
    lines = ["path\treason"] + [f"{p}\t{why}" for p, why in sorted(skipped.items())]
    write_text(out_dir / "skipped_images.tsv", "\n".join(lines) + "\n", durable=False)


__all__ = ["FitResult", "NonFiniteLossError", "build_criterion", "build_loader", "build_model",
           "build_schedule", "build_weight_optimizer", "fit", "load_sources", "load_targets",
           "prepare_process", "seed_everything", "weights_digest"]
