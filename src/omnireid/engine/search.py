"""The architecture search loop: train the supernet, anneal the temperature, derive the child.

``search(config)`` is the entry point (it and the CLI are the only readers of a config object);
``save_search(result, folder)`` writes the spec, a JSON report, a short Markdown report and the
plot of the candidate probabilities. The loop follows the paper's search recipe: one optimiser
over network weights and architecture weights, identity cross-entropy with label smoothing,
temperature ``lambda = max(min, init * rate ** (epoch // every))``.

The search uses its own small loop (:func:`train_epoch`, also usable for plain models) so that it
depends only on the data loaders and the models.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import os
import platform
import resource
import sys
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
@dataclass
class SearchDataConfig:
    """Where the search data comes from and how it is batched."""

    sources: list[str] = field(default_factory=lambda: ["synthetic_a", "synthetic_b"])
    root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # reader options (e.g. num_ids)
    height: int = 128
    width: int = 64
    batch_size: int = 32
    sampler: str = "random"  # the paper's search uses a plain random sampler
    num_workers: int = 0


@dataclass
class SearchModelConfig:
    """The supernet."""

    width: float = 0.25
    feature_dim: int = 512
    child_width: float | None = None  # width written into the derived spec (default: width)
    affine_norms: bool = False  # the paper: every normalisation layer non-affine in the search


@dataclass
class SearchOptimConfig:
    """One optimiser for network and architecture weights (the paper: Adam, lr 3e-4, wd 5e-4)."""

    name: str = "adam"
    lr: float = 0.0003
    weight_decay: float = 0.0005
    momentum: float = 0.9
    epochs: int = 60
    label_smoothing: float = 0.1


@dataclass
class SearchNASConfig:
    """Gumbel-softmax temperature schedule and search mode."""

    mode: str = "mixture"  # or "single_path"
    init_temperature: float = 10.0
    min_temperature: float = 1.0
    decay_every: int = 20
    decay_rate: float = 0.5


@dataclass
class SearchConfig:
    """Everything ``omnireid nas`` needs; see ``configs/nas.yaml``."""

    data: SearchDataConfig = field(default_factory=SearchDataConfig)
    model: SearchModelConfig = field(default_factory=SearchModelConfig)
    optim: SearchOptimConfig = field(default_factory=SearchOptimConfig)
    nas: SearchNASConfig = field(default_factory=SearchNASConfig)
    seed: int = 0
    device: str = "auto"
    threads: int | None = None  # torch intra-op threads (None: leave torch's default)
    output_dir: str = "runs/nas"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check/convert a YAML value against a dataclass field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return _from_dict(annotation, value, where)
    if origin is list:
        if isinstance(value, str):
            value = [v for v in value.split("+") if v]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(annotation) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true/false, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown config key {path!r}{hint}; valid: {', '.join(names)}")
        kwargs[key] = _coerce(value, hints[key], path)
    return cls(**kwargs)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ValueError(f"cannot set {dotted!r}: {k!r} is not a section")
    node[keys[-1]] = value


def load_search_config(
    path: str | os.PathLike | None = None, overrides: list[str] | None = None
) -> SearchConfig:
    """Read a YAML search config and apply ``key.sub=value`` overrides (values parsed as YAML).

    Unknown keys and wrongly typed values raise ``ValueError`` naming the file and the key.
    """
    import yaml

    data: dict[str, Any] = {}
    where = "defaults"
    if path is not None:
        where = str(path)
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            raise FileNotFoundError(f"search config not found: {path}") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the top level must be a mapping")
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        key, _, raw = item.partition("=")
        _set_dotted(data, key.strip(), yaml.safe_load(raw) if raw.strip() else None)
    try:
        return _from_dict(SearchConfig, data)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------
@dataclass
class EpochStats:
    """One pass over the training loader."""

    loss: float
    accuracy: float
    steps: int
    seconds: float


def train_epoch(
    model: nn.Module,
    loader: Any,
    optimizer: torch.optim.Optimizer,
    *,
    label_smoothing: float = 0.1,
    device: torch.device | str = "cpu",
    progress: bool = False,
    desc: str = "train",
) -> EpochStats:
    """One epoch of identity classification (cross-entropy with label smoothing).

    ``loader`` yields :class:`omnireid.data.Batch` es (``images (B, 3, H, W)``, ``pids (B,)``);
    the model returns a record with ``logits (B, num_classes)``.
    """
    from tqdm.auto import tqdm

    model.train()
    total_loss, correct, seen, steps = 0.0, 0, 0, 0
    start = time.perf_counter()
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        images, pids = batch.images.to(device), batch.pids.to(device)
        logits = model(images).logits
        loss = F.cross_entropy(logits, pids, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += float(loss.detach()) * len(pids)
        correct += int((logits.detach().argmax(1) == pids).sum())
        seen += len(pids)
        steps += 1
    if steps == 0:
        raise ValueError("the training loader gave no batch: fewer images than one batch?")
    return EpochStats(total_loss / seen, correct / seen, steps, time.perf_counter() - start)


def build_optimizer(
    params: Any, name: str = "adam", lr: float = 3e-4, weight_decay: float = 5e-4,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """``adam`` | ``amsgrad`` | ``sgd`` over ``params`` (one group)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "amsgrad":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, amsgrad=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum)
    raise ValueError(f"unknown optimiser {name!r}; choose from adam, amsgrad, sgd")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


def search(config: SearchConfig, progress: bool = False) -> SearchResult:
    """Run the architecture search described by ``config``.

    Loads the source domains' training sets, trains :class:`~omnireid.models.supernet.OSNetSupernet`
    for ``optim.epochs`` epochs with the annealed temperature, and derives the child.
    """
    from omnireid.data import build_train_loader, load_dataset
    from omnireid.models.supernet import build_supernet, temperature_at

    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    dc, mc, oc, nc = config.data, config.model, config.optim, config.nas
    if not dc.sources:
        raise ValueError("data.sources is empty: name at least one training domain")
    dataset = load_dataset("+".join(dc.sources), dc.root, **dc.options)
    loader = build_train_loader(dataset.train, height=dc.height, width=dc.width,
                                batch_size=dc.batch_size, sampler=dc.sampler,
                                num_workers=dc.num_workers, seed=config.seed)
    model = build_supernet(dataset.num_train_pids, width=mc.width, feature_dim=mc.feature_dim,
                           mode=nc.mode, affine_norms=mc.affine_norms).to(device)
    optimizer = build_optimizer(model.parameters(), oc.name, oc.lr, oc.weight_decay, oc.momentum)
    logger.info("search: %d ids, %d images from %s; %s mode; %d epochs", dataset.num_train_pids,
                len(dataset.train), "+".join(dc.sources), nc.mode, oc.epochs)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    history: list[EpochRecord] = []
    start = time.perf_counter()
    steps = 0
    for epoch in range(oc.epochs):
        temperature = temperature_at(epoch, nc.init_temperature, nc.decay_every, nc.decay_rate,
                                     nc.min_temperature)
        model.set_temperature(temperature)
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        stats = train_epoch(model, loader, optimizer, label_smoothing=oc.label_smoothing,
                            device=device, progress=progress,
                            desc=f"search {epoch + 1}/{oc.epochs} (lambda={temperature:g})")
        steps += stats.steps
        history.append(EpochRecord(epoch, temperature, stats.loss, stats.accuracy, stats.seconds,
                                   model.probabilities().tolist(), model.alphas().tolist()))
        logger.info("epoch %d lambda %.3g loss %.4f acc %.3f (%.1fs)", epoch + 1, temperature,
                    stats.loss, stats.accuracy, stats.seconds)
    seconds = time.perf_counter() - start
    peak_device = (torch.cuda.max_memory_allocated(device) / 2**20
                   if device.type == "cuda" else None)
    return SearchResult(
        arch=model.derive(width=mc.child_width), block_names=model.arch.block_names(),
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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def search_markdown(result: SearchResult) -> str:
    """A short Markdown report: the child, the final probabilities, the cost."""
    last = result.history[-1] if result.history else None
    lines = ["# Instance-norm placement search", "",
             f"Mode: {result.mode}; {len(result.history)} epochs on "
             f"{'+'.join(result.config['data']['sources'])} ({result.num_train_ids} ids, "
             f"{result.num_train_images} images); search width x{result.config['model']['width']}.",
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
