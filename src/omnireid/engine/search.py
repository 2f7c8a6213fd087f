"""The architecture search loop: train the supernet, anneal the temperature, derive the child.

``search(config)`` is the entry point (it and the CLI are the only readers of a config object);
``save_search(result, folder)`` writes the spec, a JSON report, a short Markdown report and the
plot of the candidate probabilities. The loop follows the paper's search recipe: one optimiser
over network weights and architecture weights, identity cross-entropy with label smoothing,
temperature ``lambda = max(min, init * rate ** (epoch // every))``.

The recipe format, data loading, loss, optimiser and the epoch loop are the training engine's
(:mod:`omnireid.config`, :func:`omnireid.engine.train.train_one_epoch`); the search adds the
temperature schedule, the architecture-weight history and the derivation.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from omnireid.config import (
    ConfigError,
    DataConfig,
    LossConfig,
    OptimConfig,
    TrainConfig,
    _build,
    load_plain,
    with_origin,
)
from omnireid.files import write_text

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Configuration: the training recipe's data/loss/optim/train sections plus a ``nas`` section
# --------------------------------------------------------------------------------------------
@dataclass
class NASConfig:
    """The supernet and the Gumbel-softmax temperature schedule.

    ``mode``: ``mixture`` (all four candidates weighted, the paper), ``single_path`` (one
    sampled candidate per step) or ``two_path`` (two sampled candidates per step); see
    :mod:`omnireid.models.supernet`. ``width``: supernet width multiplier; ``child_width``:
    width written into the derived spec (default: ``width``). ``affine_norms``: keep learnable
    scale/shift in the normalisation layers (the paper's search: no). ``share_weights``: the
    four candidates of a block share their convolutions (the paper: no).
    """

    mode: str = "mixture"
    init_temperature: float = 10.0
    min_temperature: float = 1.0
    decay_every: int = 20
    decay_rate: float = 0.5
    width: float = 1.0
    feature_dim: int = 512
    child_width: float | None = None
    affine_norms: bool = False
    share_weights: bool = False


def _search_data() -> DataConfig:
    return DataConfig(sources=["synthetic_a", "synthetic_b"], targets=[], height=128, width=64,
                      batch_size=32, sampler="random", num_workers=0)


@dataclass
class SearchConfig:
    """Everything ``omnireid nas`` reads (see the packaged recipe ``nas``).

    ``data``, ``loss``, ``optim`` and ``train`` are the training recipe's sections
    (:mod:`omnireid.config`) with search defaults: the paper's search recipe (Adam, lr 3e-4,
    weight decay 5e-4, 60 epochs, cross-entropy with label smoothing, random sampler) on the
    synthetic domains ``a`` and ``b``. Of ``train`` the search uses ``max_epoch``, ``seed``,
    ``deterministic``, ``device``, ``amp``, ``channels_last``, ``num_threads``,
    ``max_steps_per_epoch``, ``output_dir`` and ``progress``; of ``optim`` everything but the
    fixbase and ``new_layers`` options. ``nas`` is :class:`NASConfig`.
    """

    data: DataConfig = field(default_factory=_search_data)
    loss: LossConfig = field(default_factory=lambda: LossConfig(softmax=1.0, triplet=0.0, label_smooth=0.1))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adam", lr=0.0003, weight_decay=5e-4))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_epoch=60, seed=1, output_dir="runs/nas",
                                                                   channels_last=False))
    nas: NASConfig = field(default_factory=NASConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _validate(cfg: SearchConfig) -> None:
    from omnireid.models.supernet import SEARCH_MODES

    checks = [
        (cfg.nas.mode in SEARCH_MODES, f"nas.mode={cfg.nas.mode!r} is not one of {', '.join(SEARCH_MODES)}",
         ["nas.mode"]),
        (cfg.nas.init_temperature > 0 and cfg.nas.min_temperature > 0, "nas temperatures must be > 0",
         ["nas.init_temperature", "nas.min_temperature"]),
        (0 < cfg.nas.decay_rate <= 1, f"nas.decay_rate must be in (0, 1], got {cfg.nas.decay_rate}",
         ["nas.decay_rate"]),
        (cfg.nas.width > 0, f"nas.width must be > 0, got {cfg.nas.width}", ["nas.width"]),
        (cfg.optim.name in ("amsgrad", "adam", "sgd", "rmsprop"), f"optim.name={cfg.optim.name!r} is not one "
         "of amsgrad, adam, sgd, rmsprop", ["optim.name"]),
        (cfg.optim.lr > 0, f"optim.lr must be > 0, got {cfg.optim.lr}", ["optim.lr"]),
        (cfg.train.max_epoch >= 1, f"train.max_epoch must be >= 1, got {cfg.train.max_epoch}", ["train.max_epoch"]),
        (bool(cfg.data.sources), "data.sources is empty: name at least one training domain", ["data.sources"]),
        (cfg.loss.softmax > 0 or cfg.loss.triplet > 0, "loss.softmax or loss.triplet must be > 0",
         ["loss.softmax", "loss.triplet"]),
    ]
    for ok, message, keys in checks:
        if not ok:
            raise ConfigError(message, keys)


def load_search_config(
    path: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> SearchConfig:
    """Read a YAML search recipe and apply ``section.key=value`` overrides (values read as YAML).

    Sections and keys follow :mod:`omnireid.config` plus ``nas``; unset keys keep the search
    defaults of :class:`SearchConfig`. Unknown keys and bad values raise
    :class:`omnireid.config.ConfigError` naming the file (or the override) and the key.
    """
    data, origins = load_plain(path, overrides, SearchConfig().to_dict(), "the search defaults")
    try:
        cfg = _build(SearchConfig, data, "")
        _validate(cfg)
    except ConfigError as exc:
        raise with_origin(exc, origins) from None
    return cfg


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------
def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


@dataclass
class EpochRecord:
    """What one search epoch did and where the architecture weights stood after it."""

    epoch: int
    temperature: float
    loss: float
    accuracy: float
    seconds: float
    probabilities: list[list[float]]  # (num_blocks, num_candidates), relu(alpha) normalised
    alphas: list[list[float]]


@dataclass
class SearchResult:
    """The outcome of :func:`search`."""

    arch: Any  # OSNetArch of the child
    block_names: list[str]
    candidates: list[str]
    history: list[EpochRecord]
    mode: str
    seconds: float
    seconds_per_step: float
    peak_rss_mb: float
    peak_device_mb: float | None
    num_train_ids: int
    num_train_images: int
    config: dict[str, Any]
    environment: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["arch"] = self.arch.to_dict()
        return out


def _environment(device: torch.device) -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "machine": platform.machine(), "processor": platform.processor() or "",
            "cpu_count": str(os.cpu_count()), "threads": str(torch.get_num_threads()),
            "device": str(device)}


def search(config: SearchConfig) -> SearchResult:
    """Run the architecture search described by ``config``.

    Loads the training sets of ``data.sources``, trains
    :class:`~omnireid.models.supernet.OSNetSupernet` for ``train.max_epoch`` epochs with the
    annealed temperature (network and architecture weights in one optimiser, one loss), and
    derives the child.
    """
    from omnireid.data import build_train_loader
    from omnireid.engine.ddp import resolve_device
    from omnireid.engine.fit import load_train_set, seed_everything
    from omnireid.engine.optim import build_optimizer
    from omnireid.engine.train import train_one_epoch
    from omnireid.losses import build_loss
    from omnireid.models.supernet import build_supernet, temperature_at

    _validate(config)
    dc, lc, oc, tc, nc = config.data, config.loss, config.optim, config.train, config.nas
    if tc.num_threads > 0:
        torch.set_num_threads(tc.num_threads)
    seed_everything(tc.seed, tc.deterministic)
    device = resolve_device(tc.device)
    dataset = load_train_set(config)
    loader = build_train_loader(
        dataset.train, height=dc.height, width=dc.width, batch_size=dc.batch_size,
        sampler=dc.sampler, num_instances=dc.num_instances, num_workers=dc.num_workers,
        seed=tc.seed, random_flip=dc.random_flip, random_crop=dc.random_crop,
        random_erase=dc.random_erase, color_jitter=dc.color_jitter, persistent_workers=False)
    model = build_supernet(dataset.num_train_pids, width=nc.width, feature_dim=nc.feature_dim,
                           mode=nc.mode, affine_norms=nc.affine_norms,
                           share_weights=nc.share_weights).to(device)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = build_loss({"softmax": lc.softmax, "triplet": lc.triplet},
                           label_smooth=lc.label_smooth, margin=lc.margin)
    # alpha sits in the same parameter group as the network weights: one optimiser, one loss
    optimizer = build_optimizer(model, oc.name, oc.lr, weight_decay=oc.weight_decay,
                                momentum=oc.momentum, nesterov=oc.nesterov,
                                betas=(oc.adam_beta1, oc.adam_beta2), rmsprop_alpha=oc.rmsprop_alpha)
    scaler = torch.amp.GradScaler(device.type) if tc.amp == "fp16" else None
    logger.info("search: %d ids, %d images from %s; %s mode; %d epochs", dataset.num_train_pids,
                len(dataset.train), "+".join(dc.sources), nc.mode, tc.max_epoch)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    history: list[EpochRecord] = []
    start = time.perf_counter()
    steps = 0
    for epoch in range(tc.max_epoch):
        temperature = temperature_at(epoch, nc.init_temperature, nc.decay_every, nc.decay_rate,
                                     nc.min_temperature)
        model.set_temperature(temperature)
        loader.sampler.set_epoch(epoch)
        stats = train_one_epoch(model, loader, criterion, optimizer, device=device, epoch=epoch,
                                amp=tc.amp, scaler=scaler, channels_last=tc.channels_last,
                                grad_clip=oc.grad_clip, max_steps=tc.max_steps_per_epoch,
                                progress=tc.progress)
        steps += stats.steps
        history.append(EpochRecord(epoch, temperature, stats.loss, stats.acc, stats.seconds,
                                   model.probabilities().tolist(), model.alphas().tolist()))
        logger.info("epoch %d lambda %.3g loss %.4f acc %.3f (%.1fs)", epoch + 1, temperature,
                    stats.loss, stats.acc, stats.seconds)
    seconds = time.perf_counter() - start
    peak_device = (torch.cuda.max_memory_allocated(device) / 2**20
                   if device.type == "cuda" else None)
    return SearchResult(
        arch=model.derive(width=nc.child_width), block_names=model.arch.block_names(),
        candidates=[c.value for c in model.candidates], history=history, mode=nc.mode,
        seconds=seconds, seconds_per_step=seconds / max(steps, 1), peak_rss_mb=peak_rss_mb(),
        peak_device_mb=peak_device, num_train_ids=dataset.num_train_pids,
        num_train_images=len(dataset.train), config=config.to_dict(),
        environment=_environment(device),
    )


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------
@dataclass
class SearchArtifacts:
    """Files written by :func:`save_search`."""

    folder: Path
    spec: Path
    report_json: Path
    report_md: Path
    plot: Path | None


def _write_text(path: Path, text: str) -> None:
    write_text(path, text)


def search_markdown(result: SearchResult) -> str:
    """A short Markdown report: the child, the final probabilities, the cost."""
    last = result.history[-1] if result.history else None
    lines = ["# Instance-norm placement search", "",
             f"Mode: {result.mode}; {len(result.history)} epochs on "
             f"{'+'.join(result.config['data']['sources'])} ({result.num_train_ids} ids, "
             f"{result.num_train_images} images); search width x{result.config['nas']['width']}.",
             "", "## Child architecture", "",
             "| block | IN placement | " + " | ".join(f"p({c})" for c in result.candidates) + " |",
             "|---|---|" + "---|" * len(result.candidates)]
    lines.append("| conv1 | instance norm |" + " |" * len(result.candidates))
    for i, (name, pos) in enumerate(zip(result.block_names, result.arch.blocks)):
        probs = last.probabilities[i] if last else [float("nan")] * len(result.candidates)
        lines.append(f"| {name} | {pos.value} | " + " | ".join(f"{p:.3f}" for p in probs) + " |")
    lines += ["", "p(candidate) = relu(alpha) normalised, after the last epoch.", "",
              "## Cost", "",
              f"- wall time: {result.seconds:.1f} s ({result.seconds_per_step * 1000:.0f} ms/step)",
              f"- peak resident memory of the process: {result.peak_rss_mb:.0f} MiB"]
    if result.peak_device_mb is not None:
        lines.append(f"- peak device memory: {result.peak_device_mb:.0f} MiB")
    lines += ["", "## Epochs", "", "| epoch | lambda | loss | train acc | seconds |",
              "|---|---|---|---|---|"]
    lines += [f"| {r.epoch + 1} | {r.temperature:g} | {r.loss:.4f} | {r.accuracy:.3f} | "
              f"{r.seconds:.1f} |" for r in result.history]
    lines += ["", "Retrain the child: `omnireid train --set model.arch=arch.json`, or in Python "
              "`create_model('osnet', arch='arch.json', width=1.0, num_classes=...)`.", ""]
    return "\n".join(lines)


def save_search(result: SearchResult, folder: str | os.PathLike, plot: bool = True) -> SearchArtifacts:
    """Write ``arch.json`` (the child spec), ``search.json``, ``report.md`` and, when matplotlib
    is installed, ``probabilities.png`` into ``folder`` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "arch.json"
    result.arch.save(spec)
    report_json = folder / "search.json"
    _write_text(report_json, json.dumps(result.to_dict(), indent=2) + "\n")
    report_md = folder / "report.md"
    _write_text(report_md, search_markdown(result))
    png: Path | None = None
    if plot and result.history:
        try:
            from omnireid.viz.search_plot import plot_search_probabilities

            png = plot_search_probabilities(result, folder / "probabilities.png")
        except ImportError as exc:
            logger.warning("no probability plot: %s", exc)
    return SearchArtifacts(folder, spec, report_json, report_md, png)
