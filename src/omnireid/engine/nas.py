"""The architecture search (NAS): train the supernet, anneal the temperature, derive the child.

``nas(config)`` is the entry point (it, :func:`omnireid.engine.fit` and the CLI are the only
readers of a config object). It follows the paper's method: one supernet whose OS blocks mix
four instance-norm placements (:mod:`omnireid.models.supernet`), Gumbel-softmax weights over
``log(relu(alpha))``, temperature ``lambda = max(min, init * rate ** (epoch // every))``, one
loss (identity cross-entropy with label smoothing), no separate validation split.

The recipe format (:class:`omnireid.config.NasConfig`), the data, loader, loss, optimiser,
schedule and the epoch itself are the training engine's (:mod:`omnireid.engine.fit`,
:func:`omnireid.engine.train.train_one_epoch`); the search adds the supernet, the temperature
schedule, an optional optimiser of their own for the architecture weights (``nas.arch_optim``),
the record of ``alpha`` after every epoch and the derivation.

Output folder (``train.output_dir``), claimed for this run (:mod:`omnireid.engine.run_folder`)::

    arch.json          the child spec (OSNetArch)
    search.json        config, every epoch's temperature, loss, alpha and probabilities, the
                       convergence summary (per block: chosen candidate, its probability,
                       entropy), time and memory
    report.md          the same as a short report
    probabilities.png  candidate probabilities per block over epochs (matplotlib)
    last.pt            checkpoint after the latest epoch: an interrupted search resumes from it
    run.json           whose folder this is
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import platform
import resource
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from omnireid.config import NasConfig, validate
from omnireid.engine.checkpoint import (
    LAST,
    atomic_torch_save,
    load_checkpoint,
    rng_state,
    set_rng_state,
)
from omnireid.engine.ddp import resolve_device
from omnireid.engine.fit import (
    build_criterion,
    build_loader,
    build_schedule,
    build_weight_optimizer,
    load_sources,
    prepare_process,
)
from omnireid.engine.optim import OptimizerSet
from omnireid.engine.run_folder import (
    LOCK_NAME,
    MARKER,
    claim_run_folder,
    fingerprint_of,
    marked_by,
)
from omnireid.engine.train import train_one_epoch
from omnireid.errors import UsageError
from omnireid.files import write_text
from omnireid.models.arch import OSNetArch
from omnireid.models.supernet import OSNetSupernet, build_supernet, temperature_at
from omnireid.viz.nas_plot import plot_nas_probabilities, plot_nas_seeds

logger = logging.getLogger(__name__)

#: config keys that do not change what a search computes (left out of the run fingerprint)
_VOLATILE = (("train", "output_dir"), ("train", "progress"), ("train", "num_threads"),
             ("data", "num_workers"), ("data", "root"))


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------
@dataclass
class EpochRecord:
    """What one search epoch did and where the architecture weights stood after it."""

    epoch: int
    temperature: float
    loss: float
    accuracy: float
    seconds: float
    lr: float
    arch_lr: float
    probabilities: list[list[float]]  # (num_blocks, num_candidates), relu(alpha) normalised
    alphas: list[list[float]]


DECIDED_P = 0.5
"""A block is decided when its chosen candidate's probability is at least this."""


@dataclass
class BlockConvergence:
    """How decided one block is after the search.

    ``probability``: p(chosen) under ``relu(alpha)`` normalised (1/K = undecided, 1 = one
    candidate left). ``entropy_bits``: entropy of that distribution (log2 K = undecided, 0 =
    decided). ``margin``: p(chosen) - p(runner-up).
    """

    block: str
    chosen: str
    probability: float
    entropy_bits: float
    margin: float

    @property
    def decided(self) -> bool:
        """p(chosen) >= :data:`DECIDED_P`."""
        return self.probability >= DECIDED_P


@dataclass
class NasResult:
    """The outcome of :func:`nas`."""

    arch: OSNetArch  # the child
    block_names: list[str]
    candidates: list[str]
    history: list[EpochRecord]
    convergence: list[BlockConvergence]
    mode: str
    seconds: float  # wall time of the search epochs (all sessions of a resumed run)
    cpu_seconds: float  # CPU time of this process over the same epochs (all threads)
    steps: int
    seconds_per_step: float
    peak_rss_mb: float
    peak_device_mb: float | None
    num_train_ids: int
    num_train_images: int
    config: dict[str, Any]
    environment: dict[str, str]
    output_dir: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["arch"] = self.arch.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NasResult:
        """Read back what :meth:`to_dict` wrote (``search.json``)."""
        d = dict(data)
        d["arch"] = OSNetArch.from_dict(d["arch"])
        d["history"] = [EpochRecord(**r) for r in d["history"]]
        d["convergence"] = [BlockConvergence(**c) for c in d["convergence"]]
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def decided(self) -> bool:
        """Every block's chosen candidate has probability >= :data:`DECIDED_P`."""
        return all(c.decided for c in self.convergence)


def block_convergence(probabilities: Sequence[Sequence[float]], block_names: Sequence[str],
                      candidates: Sequence[str]) -> list[BlockConvergence]:
    """Per block: the candidate with the largest probability, that probability, the entropy (bits)
    and the margin over the runner-up. ``probabilities``: ``(num_blocks, K)`` rows summing to 1."""
    out = []
    for name, row in zip(block_names, probabilities):
        order = sorted(range(len(row)), key=lambda k: row[k], reverse=True)
        entropy = -sum(p * math.log2(p) for p in row if p > 0)
        margin = row[order[0]] - (row[order[1]] if len(order) > 1 else 0.0)
        out.append(BlockConvergence(name, candidates[order[0]], float(row[order[0]]),
                                    float(max(entropy, 0.0)), float(margin)))
    return out


@dataclass
class SeedAgreement:
    """Which blocks several searches (one per seed) agree on.

    ``choices``: per block, the candidate each seed chose (seed order). ``agreeing_blocks``:
    names of blocks where every seed chose the same. ``same_child``: the largest number of seeds
    that derived the identical child. ``majority_child``: per block, the most frequent choice.
    """

    seeds: list[int]
    block_names: list[str]
    choices: list[list[str]]
    agreeing_blocks: list[str]
    same_child: int
    majority_child: list[str]

    @property
    def converged(self) -> bool:
        """The issue's target: the same child in at least 2 of 3 seeds (generally: a majority of
        the seeds), or all but one block agreeing across all seeds."""
        n = len(self.seeds)
        return self.same_child >= n // 2 + 1 or len(self.agreeing_blocks) >= len(self.block_names) - 1

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["converged"] = self.converged
        return out


def seed_agreement(seeds: Sequence[int], archs: Sequence[OSNetArch], block_names: Sequence[str]) -> SeedAgreement:
    """Compare the children of searches that differ only in their seed."""
    if len(seeds) != len(archs) or not archs:
        raise ValueError("seed_agreement needs one child per seed")
    per_block = [[a.blocks[b].value for a in archs] for b in range(len(block_names))]
    agreeing = [name for name, picks in zip(block_names, per_block) if len(set(picks)) == 1]
    same_child = Counter(tuple(p.value for p in a.blocks) for a in archs).most_common(1)[0][1]
    majority = [Counter(picks).most_common(1)[0][0] for picks in per_block]
    return SeedAgreement(list(seeds), list(block_names), per_block, agreeing, same_child, majority)


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------
def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def environment(device: torch.device | str = "cpu") -> dict[str, str]:
    """Versions and machine of this process (for reports)."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = ""
    return {"python": platform.python_version(), "torch": torch.__version__,
            "machine": platform.machine(), "cpu": cpu, "cpu_count": str(os.cpu_count()),
            "threads": str(torch.get_num_threads()), "device": str(device), "load_average": load}


def nas_fingerprint(config: NasConfig) -> str:
    """What identifies a search run (the recipe without output paths, threads, progress bars)."""
    data = config.to_dict()
    for section, key in _VOLATILE:
        data[section].pop(key, None)
    return fingerprint_of(data)


def build_arch_optimizer(model: OSNetSupernet, config: NasConfig) -> torch.optim.Optimizer | OptimizerSet:
    """The optimiser of the search: network weights per ``optim``; ``alpha`` in the same group
    (``nas.arch_optim: same``, the published code) or in an optimiser of its own."""
    nc, oc = config.nas, config.optim
    if nc.arch_optim == "same":
        return build_weight_optimizer(model, oc)
    weights = build_weight_optimizer(model, oc, skip=model.arch_parameters())
    group = [{"params": model.arch_parameters(), "lr": nc.arch_lr, "initial_lr": nc.arch_lr}]
    if nc.arch_optim == "adam":
        arch = torch.optim.Adam(group, lr=nc.arch_lr, betas=(oc.adam_beta1, oc.adam_beta2),
                                weight_decay=nc.arch_weight_decay)
    else:
        arch = torch.optim.SGD(group, lr=nc.arch_lr, momentum=oc.momentum,
                               weight_decay=nc.arch_weight_decay)
    return OptimizerSet(weights, arch)


def _arch_lr(optimizer, model: OSNetSupernet) -> float:
    ids = {id(p) for p in model.arch_parameters()}
    for g in optimizer.param_groups:
        if any(id(p) in ids for p in g["params"]):
            return float(g["lr"])
    return float("nan")  # pragma: no cover


def nas(config: NasConfig, *, overwrite: bool = False, plot: bool = True) -> NasResult:
    """Run the architecture search of ``config`` in ``train.output_dir`` and write its reports.

    The folder is claimed for this run: the same recipe continues an interrupted search from
    ``last.pt`` (or just reports a finished one); a folder holding anything else is refused
    unless ``overwrite``.

    Raises:
        omnireid.errors.RunFolderError: the folder is in use or holds other results.
    """
    validate(config)
    out = Path(config.train.output_dir)
    with claim_run_folder(out, "nas", nas_fingerprint(config), overwrite=overwrite,
                          describe=f"seed {config.train.seed}, {config.nas.mode}, "
                                   f"{'+'.join(config.data.sources)}") as run:
        report = out / "search.json"
        if run.resumed and report.is_file():
            logger.info("%s: search already finished, reading its results", out)
            return NasResult.from_dict(json.loads(report.read_text()))
        if not run.resumed:
            (out / LAST).unlink(missing_ok=True)
        result = _search(config, out)
        save_nas(result, out, plot=plot)
        return result


def _search(config: NasConfig, out: Path) -> NasResult:
    dc, oc, tc, nc = config.data, config.optim, config.train, config.nas
    prepare_process(tc)
    device = resolve_device(tc.device)
    dataset = load_sources(dc)
    loader = build_loader(dc, dataset.train, seed=tc.seed, pin_memory=device.type == "cuda")
    model = build_supernet(dataset.num_train_pids, width=nc.width, feature_dim=nc.feature_dim,
                           mode=nc.mode, affine_norms=nc.affine_norms,
                           share_weights=nc.share_weights).to(device)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = build_criterion(config.loss)
    optimizer = build_arch_optimizer(model, config)
    # the schedule of the network's weights; alpha's too unless it keeps a constant rate
    scheduled = optimizer.optimizers[0] if nc.arch_schedule == "constant" else optimizer
    scheduler = build_schedule(scheduled, config.sched, oc.lr, tc.max_epoch)
    scaler = torch.amp.GradScaler(device.type) if tc.amp == "fp16" else None

    history: list[EpochRecord] = []
    start_epoch, steps, seconds, cpu_seconds = 0, 0, 0.0, 0.0
    last = out / LAST
    if last.is_file():
        state = load_checkpoint(last)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"], loader.generator)
        start_epoch = int(state["epoch"])
        history = [EpochRecord(**r) for r in state["history"]]
        steps, seconds, cpu_seconds = int(state["steps"]), float(state["seconds"]), float(state["cpu_seconds"])
        logger.info("resuming the search in %s after epoch %d", out, start_epoch)
    logger.info("search: %d ids, %d images from %s; %s mode; %d epochs", dataset.num_train_pids,
                len(dataset.train), "+".join(dc.sources), nc.mode, tc.max_epoch)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for epoch in range(start_epoch, tc.max_epoch):
        t0, c0 = time.perf_counter(), time.process_time()
        temperature = temperature_at(epoch, nc.init_temperature, nc.decay_every, nc.decay_rate,
                                     nc.min_temperature)
        model.set_temperature(temperature)
        for alpha in model.arch_parameters():
            alpha.requires_grad_(epoch >= nc.arch_start_epoch)
        loader.sampler.set_epoch(epoch)
        lrs = scheduler.step(epoch)
        stats = train_one_epoch(model, loader, criterion, optimizer, device=device, epoch=epoch,
                                amp=tc.amp, scaler=scaler, channels_last=tc.channels_last,
                                grad_clip=oc.grad_clip, max_steps=tc.max_steps_per_epoch,
                                progress=tc.progress)
        steps += stats.steps
        seconds += time.perf_counter() - t0
        cpu_seconds += time.process_time() - c0
        arch_lr = _arch_lr(optimizer, model) if epoch >= nc.arch_start_epoch else 0.0
        history.append(EpochRecord(epoch, temperature, stats.loss, stats.acc, stats.seconds, lrs[0],
                                   arch_lr, model.probabilities().tolist(), model.alphas().tolist()))
        atomic_torch_save({"format": 1, "epoch": epoch + 1, "model": model.state_dict(),
                           "optimizer": optimizer.state_dict(), "rng": rng_state(loader.generator),
                           "history": [dataclasses.asdict(r) for r in history], "steps": steps,
                           "seconds": seconds, "cpu_seconds": cpu_seconds}, last)
        logger.info("epoch %d lambda %.3g loss %.4f acc %.3f (%.1fs) max p %.3f", epoch + 1, temperature,
                    stats.loss, stats.acc, stats.seconds, float(model.probabilities().max(1).values.min()))
    peak_device = (torch.cuda.max_memory_allocated(device) / 2**20
                   if device.type == "cuda" else None)
    block_names = list(model.arch.block_names())
    candidates = [c.value for c in model.candidates]
    return NasResult(
        arch=model.derive(width=nc.child_width), block_names=block_names, candidates=candidates,
        history=history,
        convergence=block_convergence(model.probabilities().tolist(), block_names, candidates),
        mode=nc.mode, seconds=seconds, cpu_seconds=cpu_seconds, steps=steps,
        seconds_per_step=seconds / max(steps, 1), peak_rss_mb=peak_rss_mb(),
        peak_device_mb=peak_device, num_train_ids=dataset.num_train_pids,
        num_train_images=len(dataset.train), config=config.to_dict(),
        environment=environment(device), output_dir=str(out),
    )


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------
@dataclass
class NasArtifacts:
    """Files written by :func:`save_nas`."""

    folder: Path
    spec: Path
    report_json: Path
    report_md: Path
    plot: Path | None


def _write_text(path: Path, text: str) -> None:
    write_text(path, text)


def undecided_note(convergence: list[BlockConvergence]) -> str | None:
    """One sentence naming the blocks whose chosen placement has p < :data:`DECIDED_P`, or None when every
    block is decided. Such a block is near a tie: in the measurements of docs/nas.md its choice
    changed with the seed and even with the number of threads."""
    open_blocks = [f"{c.block} ({c.chosen}, p = {c.probability:.2f})" for c in convergence
                   if not c.decided]
    if not open_blocks:
        return None
    return (f"Not decided (p(chosen) < {DECIDED_P}): {', '.join(open_blocks)}. A block this close to a "
            "tie can go the other way with another seed or another number of threads; search "
            "with --seeds 1,2,3 to see which blocks are stable.")


def convergence_table(result: NasResult) -> list[str]:
    """Markdown rows: per block the child's placement, every candidate's final probability, the
    chosen one's probability and the entropy."""
    lines = ["| block | chosen | " + " | ".join(f"p({c})" for c in result.candidates)
             + " | p(chosen) | entropy (bits) |",
             "|---|---|" + "---|" * len(result.candidates) + "---|---|",
             "| conv1 | instance norm |" + " |" * len(result.candidates) + " | |"]
    last = result.history[-1].probabilities if result.history else []
    for i, c in enumerate(result.convergence):
        probs = last[i] if last else []
        lines.append(f"| {c.block} | {c.chosen} | " + " | ".join(f"{p:.3f}" for p in probs)
                     + f" | {c.probability:.3f} | {c.entropy_bits:.2f} |")
    return lines


def nas_markdown(result: NasResult) -> str:
    """A short Markdown report: the child, how decided each block is, the cost."""
    cfg = result.config
    n_cand = len(result.candidates)
    decided = sum(c.decided for c in result.convergence)
    lines = ["# Instance-norm placement search", "",
             f"Mode: {result.mode}; {len(result.history)} epochs, {result.steps} steps on "
             f"{'+'.join(cfg['data']['sources'])} ({result.num_train_ids} ids, "
             f"{result.num_train_images} images, {cfg['data']['height']}x{cfg['data']['width']}); "
             f"supernet width x{cfg['nas']['width']}; seed {cfg['train']['seed']}; architecture "
             f"weights: {_arch_description(cfg)}.", "",
             "## Child architecture and convergence", ""]
    lines += convergence_table(result)
    lines += ["", f"p = relu(alpha) normalised, after the last epoch (undecided: p = {1 / n_cand:.2f}, "
              f"entropy {math.log2(n_cand):.0f} bits). {decided} of {len(result.convergence)} blocks "
              f"have p(chosen) >= {DECIDED_P}.", ""]
    note = undecided_note(result.convergence)
    if note:
        lines += [note, ""]
    lines += ["## Cost", "",
              f"- wall time: {result.seconds:.1f} s ({result.seconds_per_step * 1000:.0f} ms/step)",
              f"- CPU time of the process: {result.cpu_seconds:.1f} s",
              f"- peak resident memory of the process: {result.peak_rss_mb:.0f} MiB",
              f"- machine: {result.environment.get('cpu', '')} ({result.environment.get('cpu_count')} "
              f"CPUs, {result.environment.get('threads')} torch threads; load average at the end "
              f"{result.environment.get('load_average', '?')})"]
    if result.peak_device_mb is not None:
        lines.append(f"- peak device memory: {result.peak_device_mb:.0f} MiB")
    lines += ["", "## Epochs", "", "| epoch | lambda | lr | arch lr | loss | train acc | min p(chosen) | seconds |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.epoch + 1} | {r.temperature:g} | {r.lr:.2e} | {r.arch_lr:.2e} | {r.loss:.4f} | "
              f"{r.accuracy:.3f} | {min(max(p) for p in r.probabilities):.3f} | {r.seconds:.1f} |"
              for r in result.history]
    lines += ["", "Retrain the child: `omnireid train --set model.arch=arch.json`, or in Python "
              "`create_model('osnet', arch='arch.json', width=1.0, num_classes=...)`.", ""]
    return "\n".join(lines)


def _arch_description(cfg: dict[str, Any]) -> str:
    nas_cfg = cfg["nas"]
    if nas_cfg["arch_optim"] == "same":
        return f"in the network's optimiser ({cfg['optim']['name']}, lr {cfg['optim']['lr']:g})"
    schedule = "constant" if nas_cfg.get("arch_schedule", "same") == "constant" else "the network's schedule"
    return (f"own {nas_cfg['arch_optim']} optimiser, lr {nas_cfg['arch_lr']:g} ({schedule}), weight decay "
            f"{nas_cfg['arch_weight_decay']:g}, from epoch {nas_cfg['arch_start_epoch'] + 1}")


def save_nas(result: NasResult, folder: str | os.PathLike, plot: bool = True) -> NasArtifacts:
    """Write ``arch.json`` (the child spec), ``search.json``, ``report.md`` and, when matplotlib
    is installed, ``probabilities.png`` into ``folder`` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "arch.json"
    result.arch.save(spec)
    report_md = folder / "report.md"
    _write_text(report_md, nas_markdown(result))
    png: Path | None = None
    if plot and result.history:
        try:
            png = plot_nas_probabilities(result, folder / "probabilities.png")
        except ImportError as exc:
            logger.warning("no probability plot: %s", exc)
    report_json = folder / "search.json"  # last: its presence marks a finished search
    _write_text(report_json, json.dumps(result.to_dict(), indent=2) + "\n")
    return NasArtifacts(folder, spec, report_json, report_md, png)


# --------------------------------------------------------------------------------------------
# Several seeds
# --------------------------------------------------------------------------------------------
@dataclass
class NasSeedsResult:
    """Searches that differ only in their seed, and how far they agree."""

    results: list[NasResult]
    agreement: SeedAgreement

    def to_dict(self) -> dict[str, Any]:
        return {"agreement": self.agreement.to_dict(),
                "seeds": [{"seed": r.config["train"]["seed"], "folder": r.output_dir,
                           "child": [b.value for b in r.arch.blocks],
                           "convergence": [dataclasses.asdict(c) for c in r.convergence],
                           "decided": r.decided, "seconds": r.seconds, "cpu_seconds": r.cpu_seconds,
                           "steps": r.steps, "environment": r.environment}
                          for r in self.results]}


def nas_seeds(config: NasConfig, seeds: Sequence[int], *, overwrite: bool = False,
              plot: bool = True) -> NasSeedsResult:
    """Run the search of ``config`` once per seed, in ``OUT/seed_N`` (``OUT = train.output_dir``),
    and write the agreement report (``OUT/search.json``, ``OUT/report.md`` and, with ``plot``,
    ``OUT/seeds.png``: the final probabilities of every block and seed). Each seed's folder is
    its own run (resumable); the top folder is claimed for the set of seeds.

    Seeds may also be searched one by one (e.g. in parallel, ``omnireid nas -o OUT/seed_N --set
    train.seed=N``) and then reported together by this function: a top folder that holds only
    such seed folders of the same recipe is taken as it is. ``overwrite`` replaces what holds
    another recipe; a seed folder that already holds this recipe's search is continued or read
    back, never searched again."""
    if len(set(seeds)) != len(seeds) or not seeds:
        raise UsageError(f"seeds must be distinct and at least one, got {list(seeds)}")
    validate(config)
    out = Path(config.train.output_dir)
    fp = fingerprint_of({"recipe": nas_fingerprint(config), "seeds": list(seeds)})
    configs = {seed: dataclasses.replace(config, train=dataclasses.replace(
        config.train, seed=int(seed), output_dir=str(out / f"seed_{seed}"))) for seed in seeds}
    mine = {f"seed_{seed}": nas_fingerprint(cfg) for seed, cfg in configs.items()}
    only_seed_folders = out.is_dir() and all(
        p.name in (LOCK_NAME, MARKER) or (p.name in mine and marked_by(p, "nas", mine[p.name]))
        for p in out.iterdir())
    with claim_run_folder(out, "nas-seeds", fp, overwrite=overwrite or only_seed_folders,
                          describe=f"seeds {', '.join(map(str, seeds))}"):
        results = []
        for cfg in configs.values():
            folder = Path(cfg.train.output_dir)
            same = marked_by(folder, "nas", mine[folder.name])
            results.append(nas(cfg, overwrite=overwrite and not same, plot=plot))
        agreement = seed_agreement(list(seeds), [r.arch for r in results], results[0].block_names)
        both = NasSeedsResult(results, agreement)
        _write_text(out / "report.md", seeds_markdown(both))
        _write_text(out / "search.json", json.dumps(both.to_dict(), indent=2) + "\n")
        if plot:
            try:
                plot_nas_seeds(results, out / "seeds.png")
            except ImportError as exc:
                logger.warning("no seeds plot: %s", exc)
        return both


def seeds_markdown(both: NasSeedsResult) -> str:
    """Markdown: per block the choice and p(chosen) of every seed, and whether they agree."""
    ag, results = both.agreement, both.results
    head = " | ".join(f"seed {s}: choice (p, bits)" for s in ag.seeds)
    lines = ["# Instance-norm placement search over seeds", "",
             f"{len(results)} searches that differ only in their seed "
             f"({results[0].mode}, {'+'.join(results[0].config['data']['sources'])}, "
             f"{results[0].steps} steps each).", "",
             f"| block | {head} | all agree |", "|---|" + "---|" * (len(ag.seeds) + 1)]
    for b, name in enumerate(ag.block_names):
        cells = [f"{r.convergence[b].chosen} ({r.convergence[b].probability:.2f}, "
                 f"{r.convergence[b].entropy_bits:.2f})" for r in results]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'yes' if name in ag.agreeing_blocks else 'no'} |")
    lines += ["", f"- blocks on which all seeds agree: {len(ag.agreeing_blocks)} of {len(ag.block_names)}"
              f" ({', '.join(ag.agreeing_blocks) or 'none'})",
              f"- seeds that derived the same child: {ag.same_child} of {len(ag.seeds)}",
              f"- majority child: {', '.join(ag.majority_child)}",
              f"- every block decided (p(chosen) >= {DECIDED_P}) in every seed: "
              f"{'yes' if all(r.decided for r in results) else 'no'}",
              f"- converged by the target (same child in a majority of seeds, or all blocks but one "
              f"agreeing): {'yes' if ag.converged else 'no'}",
              "- time per seed: " + ", ".join(f"{r.seconds:.0f} s wall / {r.cpu_seconds:.0f} s CPU"
                                              for r in results), ""]
    return "\n".join(lines)


__all__ = ["BlockConvergence", "EpochRecord", "NasArtifacts", "NasResult", "NasSeedsResult",
           "SeedAgreement", "block_convergence", "build_arch_optimizer", "environment", "nas",
           "nas_fingerprint", "nas_markdown", "nas_seeds", "save_nas", "seed_agreement",
           "seeds_markdown", "undecided_note", "DECIDED_P"]
