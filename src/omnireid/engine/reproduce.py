"""``reproduce(plan)``: the paper's findings on the built-in domain-shift benchmark, in one run.

Four models that differ only in where instance normalisation sits -- OSNet, OSNet-IBN, OSNet-AIN
and the child of an architecture search (searched in the same run, or given) -- are trained with
one recipe and several seeds, in these settings:

* **single source**: trained on the benchmark's source domain, tested on its own test split
  (*same-domain*) and on unseen targets that differ by camera *style* only, by *population* only,
  or by *both*;
* **multi-source, leave one domain out**: trained on all domains of the group but one, tested on
  the one left out. Every training run takes the same number of steps, so a multi-source model
  sees more variety, not more updates.

Then the paper's claims get verdicts from the numbers (:mod:`omnireid.evaluation.claims`), beside
the published numbers on real datasets (:data:`PAPER_NUMBERS`).

The run folder (claimed for the run, see :mod:`omnireid.engine.run_folder`)::

    claims.json        {"claims": [...], "results": [one row per model/setting/seed]}
    report.html        tables of mean +- std, the plot, the claims with their evidence
    report.md          the same tables and verdicts as Markdown
    results.png        rank-1 per model and setting, error bars = std over seeds
    run_info.json      plan, machine, wall and CPU time, load average
    archs/NAME.json    the architecture of each model
    search/            the architecture search (when not given an arch)
    cells/MODEL/SOURCES/seed_S/   one training run each (fit's folder; cell.json when finished)

Every cell is a :func:`omnireid.engine.fit` run; a finished cell is not run again, an
interrupted one resumes from its ``last.pt``, so running the same command again continues an
interrupted reproduction. Cells run in ``jobs`` worker processes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from omnireid.config import NasConfig, load_config, load_nas_config
from omnireid.data.datasets.synthetic import is_synthetic
from omnireid.data.synthetic import SyntheticSpec, domain_identity
from omnireid.data.synthetic_domains import SINGLE_SOURCE, leave_one_out_splits
from omnireid.engine.checkpoint import BEST, LAST
from omnireid.engine.fit import fit, load_sources
from omnireid.engine.nas import environment, nas
from omnireid.engine.run_folder import claim_run_folder, fingerprint_of
from omnireid.engine.workers import training_pool
from omnireid.errors import UsageError
from omnireid.evaluation.claims import (
    MULTI_SOURCE,
    SAME_DOMAIN,
    SINGLE_SOURCE_SHIFTS,
    evaluate_claims,
)
from omnireid.evaluation.paper_numbers import PAPER_NUMBERS
from omnireid.files import write_json
from omnireid.models.arch import AIN_BLOCKS, IBN_BLOCKS, OSNetArch, make_arch
from omnireid.viz.reproduce_report import write_report

logger = logging.getLogger(__name__)

MODELS = ("osnet", "osnet_ibn", "osnet_ain", "child")
MODEL_LABELS = {"osnet": "OSNet", "osnet_ibn": "OSNet-IBN", "osnet_ain": "OSNet-AIN", "child": "searched child"}
SETTINGS = (SAME_DOMAIN, *SINGLE_SOURCE_SHIFTS, MULTI_SOURCE)


# --------------------------------------------------------------------------------------------
# The benchmark and the plan
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Benchmark:
    """Which registered datasets play which role.

    ``source``: the single-source training domain (its test split is the same-domain setting).
    ``shift_targets``: unseen targets of ``source`` per kind of shift (``style``,
    ``population``, ``both``). ``leave_one_out``: the multi-source folds, ``(sources,
    held_out)``. ``search_sources``: what the architecture search trains on (kept apart from
    every evaluation domain).
    """

    source: str
    shift_targets: Mapping[str, tuple[str, ...]]
    leave_one_out: tuple[tuple[tuple[str, ...], str], ...]
    search_sources: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "shift_targets": {k: list(v) for k, v in self.shift_targets.items()},
                "leave_one_out": [[list(s), h] for s, h in self.leave_one_out],
                "search_sources": list(self.search_sources)}


def default_benchmark() -> Benchmark:
    """The registered domain-shift benchmark (:mod:`omnireid.data.synthetic_domains`): source
    ``synthetic_p1s1``; style-only, population-only and both-shift targets; the leave-one-out
    group ``p1s1, p2s2, p3s3, p4s4``. The search trains where the default ``omnireid nas`` does
    (:class:`omnireid.config.NasConfig`: synthetic domains of generator version 3, other people
    and other cameras), which no setting evaluates on, so the search of a reproduction with
    ``search_seed`` 1 is the default search with seed 1 (on the reproduction's thread count)."""
    return Benchmark(
        source=f"synthetic_{SINGLE_SOURCE['source']}",
        shift_targets={k: tuple(f"synthetic_{t}" for t in v) for k, v in SINGLE_SOURCE["targets"].items()},
        leave_one_out=tuple((tuple(s), h) for s, h in leave_one_out_splits()),
        search_sources=tuple(NasConfig().data.sources),
    )


#: The search recipe of ``--quick`` (:func:`quick_plan`): the default ``nas`` takes most of the
#: quick run's 15 minutes on its own.
QUICK_SEARCH_RECIPE = "nas_quick"


#: The training recipe of every cell (a :class:`omnireid.config.Config` as plain data); the
#: model, data sources/targets, seed and output folder are set per cell. It is the demo's recipe
#: in fp32 at 10 epochs (940 steps) instead of the demo's 15: at 15 the default run's 48 trainings
#: would take about 90 minutes on 2 cores (estimated from ``--quick`` at 15 epochs, measured at
#: 15 min 5 s: docs/nas.md);
#: ``--set train.max_epoch=15`` trains at the demo's budget.
REPRODUCE_RECIPE: dict[str, Any] = {
    "model": {"name": "osnet"},
    "data": {"height": 64, "width": 32, "batch_size": 32, "sampler": "random", "num_workers": 0,
             "random_flip": True, "color_jitter": False},
    "loss": {"softmax": 1.0, "triplet": 0.0, "label_smooth": 0.1},
    "optim": {"name": "amsgrad", "lr": 0.003, "weight_decay": 5.0e-4},
    "sched": {"name": "cosine", "warmup_epochs": 1, "warmup_factor": 0.1},
    "train": {"max_epoch": 10, "amp": "none", "channels_last": False, "eval_freq": 0,
              "progress": False, "save_curves": False},
    "test": {"dist_metric": "euclidean", "batch_size": 256},
}


@dataclass
class ReproducePlan:
    """What one reproduction runs.

    ``seeds``: training seeds (every model and setting). ``folds``: indices into
    ``benchmark.leave_one_out`` (``None``: every fold whose held-out domain is a target of the
    single-source setting, so that the two can be compared). ``arch``: a child spec to use
    instead of searching. ``steps_per_epoch``: steps of every training epoch (``None``: one pass
    over the single source's training set, used for every cell). ``search_recipe``: the
    search's recipe, a packaged recipe name or a YAML file (``nas``, the default of
    ``omnireid nas``; :func:`quick_plan` takes the shorter ``nas_quick``). ``nas_overrides``:
    dotted overrides of that recipe (:class:`omnireid.config.NasConfig`); the search trains on
    ``benchmark.search_sources``. ``recipe_overrides``: dotted overrides of
    :data:`REPRODUCE_RECIPE`.
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    width: float = 0.25
    benchmark: Benchmark = field(default_factory=default_benchmark)
    folds: tuple[int, ...] | None = None
    models: tuple[str, ...] = MODELS
    arch: OSNetArch | None = None
    steps_per_epoch: int | None = None
    search_recipe: str = "nas"
    nas_overrides: tuple[str, ...] = ()
    recipe_overrides: tuple[str, ...] = ()
    search_seed: int = 1
    one_seed_sigma: float = 2.0

    def chosen_folds(self) -> list[tuple[tuple[str, ...], str]]:
        folds = self.benchmark.leave_one_out
        if self.folds is not None:
            return [folds[i] for i in self.folds]
        targets = {t for ts in self.benchmark.shift_targets.values() for t in ts}
        return [f for f in folds if f[1] in targets]

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("benchmark", "arch")}
        d["benchmark"] = self.benchmark.to_dict()
        d["arch"] = None if self.arch is None else self.arch.to_dict()
        d["recipe"] = REPRODUCE_RECIPE
        b = self.benchmark
        d["data"] = data_identity(sorted({b.source, *(t for ts in b.shift_targets.values() for t in ts),
                                          *(n for s, h in b.leave_one_out for n in (*s, h)), *b.search_sources}))
        # the search recipe as read, so that a changed recipe file is not taken for the same run
        d["search"] = None if self.arch is not None or "child" not in self.models else \
            dataclasses.asdict(load_nas_config(self.search_recipe, self.search_overrides()))
        return d

    def use_search_recipe(self, recipe: str) -> None:
        """Search with ``recipe`` (a packaged recipe name or a YAML file), on the domains it
        names."""
        self.search_recipe = recipe
        self.benchmark = dataclasses.replace(
            self.benchmark, search_sources=tuple(load_nas_config(recipe).data.sources))

    def search_overrides(self) -> list[str]:
        """The overrides of ``search_recipe`` the search runs with (its output folder, thread
        count and data root are added where it runs)."""
        return [f"data.sources=[{', '.join(self.benchmark.search_sources)}]",
                f"train.seed={self.search_seed}", f"nas.width={self.width}", *self.nas_overrides]


def quick_plan() -> ReproducePlan:
    """``--quick``: one seed, one leave-one-out fold (the last of the default folds) and the
    short search recipe ``nas_quick`` (on its own search domains), so that the whole run fits
    in about 15 minutes on 2 cores."""
    plan = ReproducePlan(seeds=(0,))
    plan.use_search_recipe(QUICK_SEARCH_RECIPE)
    folds = plan.benchmark.leave_one_out
    chosen = plan.chosen_folds()
    plan.folds = (folds.index(chosen[-1]),) if chosen else ()
    return plan


@dataclass(frozen=True)
class Cell:
    """One training run: a model on some sources, tested on some targets, with one seed."""

    model: str
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    seed: int

    @property
    def key(self) -> str:
        return f"{self.model}/{'+'.join(_short(s) for s in self.sources)}/seed_{self.seed}"

    @property
    def multi_source(self) -> bool:
        return len(self.sources) > 1


def _short(name: str) -> str:
    return name.removeprefix("synthetic_")


def plan_cells(plan: ReproducePlan) -> list[Cell]:
    """Every training run of ``plan``, seeds outermost (so that a partial run has whole seeds)."""
    b = plan.benchmark
    ss_targets = (b.source, *dict.fromkeys(t for k in SINGLE_SOURCE_SHIFTS for t in b.shift_targets.get(k, ())))
    cells = []
    for seed in plan.seeds:
        for model in plan.models:
            cells.append(Cell(model, (b.source,), tuple(ss_targets), seed))
            for sources, held_out in plan.chosen_folds():
                cells.append(Cell(model, tuple(sources), (held_out,), seed))
    return cells


def model_arch(model: str, width: float, child: OSNetArch | None = None) -> OSNetArch:
    """The architecture of one of :data:`MODELS` at ``width``."""
    if model == "osnet":
        return make_arch(width)
    if model == "osnet_ibn":
        return make_arch(width, IBN_BLOCKS, conv1_in=True)
    if model == "osnet_ain":
        return make_arch(width, AIN_BLOCKS, conv1_in=True)
    if model == "child":
        if child is None:
            raise UsageError("the child's architecture is not known yet (search first or give an arch)")
        return child.with_width(width)
    raise UsageError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")


# --------------------------------------------------------------------------------------------
# Running cells (in worker processes)
# --------------------------------------------------------------------------------------------
def _cell_overrides(cell: Cell, arch_path: Path, out: Path, steps_per_epoch: int, threads: int,
                    extra: Sequence[str]) -> list[str]:
    return [*extra, f"model.name={cell.model}", f"model.arch={arch_path}",
            f"data.sources=[{', '.join(cell.sources)}]", f"data.targets=[{', '.join(cell.targets)}]",
            f"train.seed={cell.seed}", f"train.output_dir={out}",
            f"train.max_steps_per_epoch={steps_per_epoch}", f"train.num_threads={threads}"]


CELL_SPEC = "cell_spec.json"
"""What a cell trains (its recipe overrides and the architecture's content), written before it
starts; a cell whose spec changed is trained again instead of being read back or resumed."""


def data_identity(names: Sequence[str]) -> dict[str, str | None]:
    """For each dataset name, a digest of what draws its images when it is a registered synthetic
    domain (:func:`omnireid.data.synthetic.domain_identity`: generator version and recipes), else
    None (data on disk is the user's to keep unchanged)."""
    return {name: fingerprint_of(domain_identity(SyntheticSpec.registered(_short(name))))
            if is_synthetic(name) else None for name in names}


def cell_fingerprint(cell: Cell, arch: OSNetArch, steps_per_epoch: int, extra: Sequence[str]) -> str:
    """Fingerprint of what decides a cell's result: the cell, the architecture itself (the file
    ``archs/NAME.json`` keeps its path when a reproduction is given another child), the steps
    per epoch, the training recipe with its overrides and the data (:func:`data_identity`), so
    that a cell made by another version of the recipe or of the synthetic domains is trained
    again, never read back. Threads and folders are left out."""
    return fingerprint_of({"cell": dataclasses.asdict(cell), "arch": arch.to_dict(),
                           "steps_per_epoch": int(steps_per_epoch), "recipe": REPRODUCE_RECIPE,
                           "overrides": list(extra), "data": data_identity([*cell.sources, *cell.targets])})


def _finished_record(done: Path, fingerprint: str, arch: OSNetArch) -> dict[str, Any] | None:
    """The finished cell's record if it was made by the same spec (records written before
    fingerprints were kept are matched on their architecture), else None."""
    if not done.is_file():
        return None
    record = json.loads(done.read_text())
    if record.get("fingerprint", None) == fingerprint:
        return record
    if "fingerprint" not in record and record.get("arch") == arch.to_dict():
        return record
    logger.info("%s: made by another recipe or architecture, training the cell again", done.parent)
    return None


def run_cell(cell: dict[str, Any], arch_path: str, folder: str, steps_per_epoch: int, threads: int,
             extra: Sequence[str], data_root: str | None = None) -> dict[str, Any]:
    """Train and evaluate one cell (in a worker process); returns what ``cell.json`` holds.

    A finished cell (``cell.json`` present, made by the same spec) is read back; an interrupted
    one resumes from ``last.pt`` if its spec is unchanged; otherwise the cell is trained again.
    """
    c = Cell(cell["model"], tuple(cell["sources"]), tuple(cell["targets"]), int(cell["seed"]))
    out = Path(folder)
    arch = OSNetArch.load(arch_path)
    fp = cell_fingerprint(c, arch, steps_per_epoch, extra)
    done = out / "cell.json"
    record = _finished_record(done, fp, arch)
    if record is not None:
        return record
    spec = out / CELL_SPEC
    same_spec = spec.is_file() and json.loads(spec.read_text()).get("fingerprint") == fp
    overrides = _cell_overrides(c, Path(arch_path), out, steps_per_epoch, threads, extra)
    if data_root:
        overrides.append(f"data.root={data_root}")
    cfg = load_config(None, overrides, base=REPRODUCE_RECIPE)
    resume = out if same_spec and (out / LAST).is_file() else None
    if resume is None:
        done.unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        write_json(spec, {"fingerprint": fp, "arch": arch.to_dict()})
    t0, c0 = time.perf_counter(), time.process_time()
    # the cell folder belongs to this reproduction (its folder is claimed): a cell without a
    # checkpoint to resume starts again from scratch over whatever an earlier attempt left
    result = fit(cfg, resume=resume, overwrite=resume is None)
    record = {"cell": dataclasses.asdict(c), "metrics": result.final,
              "epochs": result.epochs, "steps": sum(int(h.get("steps", 0)) for h in result.history),
              "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
              "resumed": resume is not None, "arch": arch.to_dict(), "fingerprint": fp}
    write_json(done, record)
    for name in (LAST, BEST):  # model.pth stays; the training state is no longer needed
        (out / name).unlink(missing_ok=True)
    return record


def run_nas(recipe: str, nas_overrides: Sequence[str], folder: str, threads: int) -> dict[str, Any]:
    """The architecture search of a reproduction (in a worker process): ``recipe`` (a packaged
    recipe name or a YAML file) with ``nas_overrides``; returns the child spec and the search's
    convergence summary."""
    cfg = load_nas_config(recipe, [*nas_overrides, f"train.output_dir={folder}",
                                 f"train.num_threads={threads}", "train.progress=false"])
    result = nas(cfg)
    return {"arch": result.arch.to_dict(), "seconds": result.seconds, "cpu_seconds": result.cpu_seconds,
            "steps": result.steps, "convergence": [dataclasses.asdict(c) for c in result.convergence],
            "decided": result.decided}


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------
# Rows, summary, the whole run
# --------------------------------------------------------------------------------------------
def cell_rows(cell: Cell, metrics: Mapping[str, Mapping[str, float]], benchmark: Benchmark) -> list[dict[str, Any]]:
    """Result rows (percent) of one finished cell: a single-source cell gives one row per setting
    (same-domain and each shift, averaged over that shift's targets), a multi-source cell a
    partial ``multi-source`` row (merged over folds by :func:`collect_rows`)."""
    def pct(m: Mapping[str, float]) -> dict[str, float]:
        return {"rank1": 100.0 * float(m["rank1"]), "mAP": 100.0 * float(m["mAP"])}

    base = {"model": cell.model, "seed": cell.seed}
    if cell.multi_source:
        targets = {t: pct(metrics[t]) for t in cell.targets}
        return [{**base, "setting": MULTI_SOURCE, "trained_on": {t: list(cell.sources) for t in cell.targets},
                 "targets": targets}]
    rows = [{**base, "setting": SAME_DOMAIN, "trained_on": list(cell.sources),
             "targets": {benchmark.source: pct(metrics[benchmark.source])}}]
    for shift in SINGLE_SOURCE_SHIFTS:
        names = [t for t in benchmark.shift_targets.get(shift, ()) if t in metrics]
        if names:
            rows.append({**base, "setting": shift, "trained_on": list(cell.sources),
                         "targets": {t: pct(metrics[t]) for t in names}})
    return rows


def row_order(row: Mapping[str, Any]) -> tuple[int, int, int]:
    """Sort key of result rows as a reproduction lists them: by seed, then model and setting in
    the order of :data:`MODELS` and :data:`SETTINGS` (others last)."""
    models = {m: i for i, m in enumerate(MODELS)}
    settings = {s: i for i, s in enumerate(SETTINGS)}
    return row["seed"], models.get(row["model"], 99), settings.get(row["setting"], 99)


def judge(rows: Sequence[Mapping[str, Any]], one_seed_sigma: float) -> list[dict[str, Any]]:
    """The verdicts on claims a-e from result rows, with the paper's numbers beside them, as
    ``claims.json`` holds them."""
    return [c.to_dict() for c in evaluate_claims(rows, one_seed_sigma=one_seed_sigma, paper=PAPER_NUMBERS)]


def collect_rows(parts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge partial rows into one row per (model, setting, seed) with ``rank1``/``mAP`` = the mean
    over the row's targets."""
    merged: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in parts:
        key = (r["model"], r["setting"], r["seed"])
        if key in merged:
            merged[key]["targets"].update(r["targets"])
            if isinstance(r["trained_on"], dict):
                merged[key]["trained_on"].update(r["trained_on"])
        else:
            merged[key] = {**r, "targets": dict(r["targets"]),
                           "trained_on": dict(r["trained_on"]) if isinstance(r["trained_on"], dict)
                           else list(r["trained_on"])}
    rows = []
    for key in sorted(merged, key=lambda k: row_order({"model": k[0], "setting": k[1], "seed": k[2]})):
        r = merged[key]
        r["rank1"] = round(statistics.fmean(t["rank1"] for t in r["targets"].values()), 3)
        r["mAP"] = round(statistics.fmean(t["mAP"] for t in r["targets"].values()), 3)
        r["targets"] = {t: {k: round(v, 3) for k, v in m.items()} for t, m in r["targets"].items()}
        rows.append({"model": r["model"], "setting": r["setting"], "seed": r["seed"], "rank1": r["rank1"],
                     "mAP": r["mAP"], "targets": r["targets"], "trained_on": r["trained_on"]})
    return rows


def summarize(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds per (model, setting)."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["setting"]), []).append(r)
    out = []
    for (model, setting), rs in groups.items():
        entry: dict[str, Any] = {"model": model, "setting": setting, "seeds": sorted(r["seed"] for r in rs)}
        for metric in ("rank1", "mAP"):
            values = [float(r[metric]) for r in rs]
            entry[metric] = statistics.fmean(values)
            entry[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else None
        out.append(entry)
    return out


@dataclass
class ReproduceResult:
    """What :func:`reproduce` produced (the contents of ``claims.json`` and where it is)."""

    folder: Path
    claims: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    info: dict[str, Any]


def reproduce_fingerprint(plan: ReproducePlan) -> str:
    return fingerprint_of(plan.to_dict())


def reproduce(
    plan: ReproducePlan,
    folder: str | os.PathLike,
    *,
    jobs: int = 1,
    threads: int = 0,
    overwrite: bool = False,
    data_root: str | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> ReproduceResult:
    """Run ``plan`` in ``folder`` (claimed for it; the same plan continues an interrupted run).

    Args:
        jobs: worker processes that train cells side by side (the search is one of the jobs).
        threads: torch threads per worker (0: the CPU count divided by ``jobs``).
        on_progress: called with one line per finished search or cell (the CLI prints it).

    Raises:
        omnireid.errors.RunFolderError: the folder is in use or holds another run.
    """
    folder = Path(folder)
    say = on_progress or (lambda line: logger.info("%s", line))
    jobs = max(1, int(jobs))
    threads = threads if threads > 0 else max(1, (os.cpu_count() or 1) // jobs)
    t0 = time.time()
    with claim_run_folder(folder, "reproduce", reproduce_fingerprint(plan), overwrite=overwrite,
                          describe=f"seeds {list(plan.seeds)}, folds {plan.folds}") as run:
        if run.resumed:
            say(f"continuing the reproduction in {folder}")
        archs = folder / "archs"
        archs.mkdir(exist_ok=True)
        for model in plan.models:
            if model != "child":
                model_arch(model, plan.width).save(archs / f"{model}.json")
        child = plan.arch
        if child is not None:
            model_arch("child", plan.width, child).save(archs / "child.json")
        cells = plan_cells(plan)
        steps = plan.steps_per_epoch or _steps_per_epoch(plan, data_root)
        extra = list(plan.recipe_overrides)
        records: dict[str, dict[str, Any]] = {}
        search_info: dict[str, Any] | None = None
        with training_pool(jobs, _init_worker, (threads,)) as pool:
            pending: dict[Future, tuple[str, Any]] = {}

            def submit(cell: Cell) -> None:
                f = pool.submit(run_cell, dataclasses.asdict(cell), str(archs / f"{cell.model}.json"),
                                str(folder / "cells" / cell.key), steps, threads, extra, data_root)
                pending[f] = ("cell", cell)

            if "child" in plan.models and child is None:
                search_overrides = plan.search_overrides()
                if data_root:
                    search_overrides.append(f"data.root={data_root}")
                f = pool.submit(run_nas, plan.search_recipe, search_overrides, str(folder / "search"), threads)
                pending[f] = ("search", None)
            waiting = [c for c in cells if c.model == "child" and child is None]
            for c in cells:
                if c not in waiting:
                    submit(c)
            done_count, total = 0, len(cells)
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    kind, cell = pending.pop(f)
                    value = f.result()  # a failed cell stops the run with its traceback
                    if kind == "search":
                        search_info = value
                        child = OSNetArch.from_dict(value["arch"])
                        model_arch("child", plan.width, child).save(archs / "child.json")
                        say(f"search: {', '.join(b.value for b in child.blocks)} "
                            f"({value['seconds']:.0f} s wall, {value['cpu_seconds']:.0f} s CPU)")
                        for c in waiting:
                            submit(c)
                        waiting = []
                    else:
                        done_count += 1
                        records[cell.key] = value
                        say(_cell_line(done_count, total, cell, value))
        parts = []
        for cell in cells:
            parts += cell_rows(cell, records[cell.key]["metrics"], plan.benchmark)
        rows = collect_rows(parts)
        claims = judge(rows, plan.one_seed_sigma)
        info = _run_info(plan, records, search_info, t0, jobs, threads, steps, run.resumed)
        _write_json(folder / "claims.json", {"claims": claims, "results": rows})
        _write_json(folder / "run_info.json", info)
        summary = summarize(rows)
        write_report(folder, claims, rows, summary, info)
        return ReproduceResult(folder, claims, rows, summary, info)


def _steps_per_epoch(plan: ReproducePlan, data_root: str | None) -> int:
    """One pass over the single source's training set, in whole batches."""
    overrides = [*plan.recipe_overrides, f"data.sources=[{plan.benchmark.source}]"]
    if data_root:
        overrides.append(f"data.root={data_root}")
    cfg = load_config(None, overrides, base=REPRODUCE_RECIPE)
    return max(1, len(load_sources(cfg.data).train) // cfg.data.batch_size)


def _cell_line(i: int, total: int, cell: Cell, record: Mapping[str, Any]) -> str:
    scores = ", ".join(f"{_short(t)} {100 * m['rank1']:.1f}" for t, m in record["metrics"].items())
    return (f"[{i}/{total}] {cell.model} on {'+'.join(_short(s) for s in cell.sources)}, seed {cell.seed}: "
            f"rank-1 {scores} ({record['seconds']:.0f} s)")


def _run_info(plan: ReproducePlan, records: Mapping[str, Any], search: dict[str, Any] | None, t0: float,
              jobs: int, threads: int, steps: int, resumed: bool) -> dict[str, Any]:
    cpu = sum(r["cpu_seconds"] for r in records.values()) + (search or {}).get("cpu_seconds", 0.0)
    return {"plan": plan.to_dict(), "steps_per_epoch": steps, "jobs": jobs, "threads_per_job": threads,
            "wall_seconds_this_session": time.time() - t0, "resumed": resumed,
            "cpu_seconds_all_cells": cpu,
            "train_seconds_all_cells": sum(r["seconds"] for r in records.values()),
            "search": search, "environment": environment()}


def _write_json(path: Path, obj: Any) -> None:
    write_json(path, obj)


__all__ = ["Benchmark", "Cell", "MODELS", "MODEL_LABELS", "REPRODUCE_RECIPE", "ReproducePlan",
           "ReproduceResult", "SETTINGS", "cell_rows", "collect_rows", "default_benchmark", "judge", "model_arch",
           "cell_fingerprint", "plan_cells", "quick_plan", "reproduce", "row_order", "run_cell", "run_nas", "summarize"]
