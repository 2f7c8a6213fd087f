"""Domain generalisation on the synthetic domains: OSNet vs OSNet-IBN vs OSNet-AIN vs a searched child.

Protocol: train on the source domain(s) only, evaluate on unseen target domains (and, for
reference, on the source's own test split). Every model has the same width, recipe and seeds;
only the instance-norm placement differs. The child comes from one architecture search on the
source domain(s) (``omnireid.engine.search``), then is trained from scratch like the others.

Runs are written one JSON per (model, seed) into ``--out``, so the script can be resumed and
split over processes (``--part baselines`` / ``--part child``); ``--table`` prints the
Markdown table of mean and spread over seeds.

    python benchmarks/nas_experiment.py --part baselines --out runs/nas_experiment &
    python benchmarks/nas_experiment.py --part child --out runs/nas_experiment &
    python benchmarks/nas_experiment.py --table --out runs/nas_experiment

This is an experiment, not a test: it takes tens of minutes on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from omnireid.data import build_test_loader, build_train_loader, load_dataset
from omnireid.engine.search import load_search_config, save_search, search
from omnireid.models import IBN_BLOCKS, OSNetArch, create_model
from omnireid.models.arch import AIN_BLOCKS

BASELINES = ("osnet", "osnet_ibn", "osnet_ain")


def train_epoch(model, loader, optimizer, label_smoothing: float = 0.1):
    """One epoch of identity cross-entropy with label smoothing; returns (loss, acc, seconds)."""
    model.train()
    start, total, correct, seen = time.perf_counter(), 0.0, 0, 0
    for batch in loader:
        logits = model(batch.images).logits
        loss = torch.nn.functional.cross_entropy(logits, batch.pids, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(batch.pids)
        correct += int((logits.detach().argmax(1) == batch.pids).sum())
        seen += len(batch.pids)
    return total / seen, correct / seen, time.perf_counter() - start


def rank_metrics(qf: np.ndarray, gf: np.ndarray, q_pids, g_pids, q_cams, g_cams) -> dict[str, float]:
    """Rank-1 and mAP under the Market-1501 protocol (cosine distance)."""
    try:  # the library's evaluator when present
        from omnireid.evaluation import evaluate_rank  # type: ignore[attr-defined]
    except ImportError:
        evaluate_rank = None
    qf = qf / np.linalg.norm(qf, axis=1, keepdims=True).clip(1e-12)
    gf = gf / np.linalg.norm(gf, axis=1, keepdims=True).clip(1e-12)
    dist = 1.0 - qf @ gf.T
    q_pids, g_pids, q_cams, g_cams = map(np.asarray, (q_pids, g_pids, q_cams, g_cams))
    if evaluate_rank is not None:
        r = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
        return {"rank1": float(r.cmc[0]), "mAP": float(r.mAP)}
    rank1, aps = [], []
    for i in range(len(q_pids)):
        keep = ~((g_pids == q_pids[i]) & (g_cams == q_cams[i]))
        order = np.argsort(dist[i][keep], kind="stable")
        match = (g_pids[keep][order] == q_pids[i]).astype(np.float64)
        if not match.any():
            continue
        rank1.append(match[0])
        hits = np.cumsum(match)
        aps.append(float((hits / np.arange(1, len(match) + 1))[match > 0].mean()))
    return {"rank1": float(np.mean(rank1)), "mAP": float(np.mean(aps))}


@torch.no_grad()
def embed(model, samples, height, width) -> np.ndarray:
    model.eval()
    loader = build_test_loader(samples, height=height, width=width, batch_size=128, num_workers=0)
    return np.concatenate([model(b.images).embedding.numpy() for b in loader])


def evaluate(model, domains: dict, height: int, width: int) -> dict[str, dict[str, float]]:
    out = {}
    for name, ds in domains.items():
        qf, gf = embed(model, ds.query, height, width), embed(model, ds.gallery, height, width)
        out[name] = rank_metrics(qf, gf, [s.pid for s in ds.query], [s.pid for s in ds.gallery],
                                 [s.camid for s in ds.query], [s.camid for s in ds.gallery])
    return out


def build(name: str, width: float, num_classes: int, child: OSNetArch | None):
    if name == "osnet":
        return create_model("osnet", num_classes=num_classes, width=width)
    if name == "osnet_ibn":
        return create_model("osnet", num_classes=num_classes, width=width,
                            in_positions=IBN_BLOCKS, conv1_in=True)
    if name == "osnet_ain":
        return create_model("osnet", num_classes=num_classes, width=width,
                            in_positions=AIN_BLOCKS, conv1_in=True)
    if name == "child":
        return create_model("osnet", num_classes=num_classes, arch=child, width=width)
    raise ValueError(name)


def train_and_eval(name, seed, args, source, domains, child=None) -> dict:
    torch.manual_seed(seed)
    model = build(name, args.width, source.num_train_pids, child)
    loader = build_train_loader(source.train, height=args.height, width=args.img_width,
                                batch_size=args.batch_size, sampler="random", num_workers=0,
                                seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(args.epochs * 0.8)], 0.1)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        loader.sampler.set_epoch(epoch)
        loss, acc, seconds = train_epoch(model, loader, opt, label_smoothing=0.1)
        sched.step()
        print(f"  {name} seed {seed} epoch {epoch + 1}: loss {loss:.3f} acc {acc:.3f} ({seconds:.0f}s)",
              flush=True)
    train_s = time.perf_counter() - start
    metrics = evaluate(model, domains, args.height, args.img_width)
    return {"model": name, "seed": seed, "train_seconds": train_s, "metrics": metrics,
            "arch": model.arch.to_dict()}


def run_search(args, out: Path) -> OSNetArch:
    spec = out / "search" / "arch.json"
    if spec.is_file():
        return OSNetArch.load(spec)
    cfg = load_search_config(None, [
        f"data.sources=[{args.sources}]", f"data.height={args.height}",
        f"data.width={args.img_width}", f"data.batch_size={args.batch_size}",
        f"nas.width={args.width}", f"optim.lr={args.lr}", f"train.max_epoch={args.search_epochs}",
        f"nas.mode={args.search_mode}", "nas.decay_every=1", f"train.seed={args.search_seed}",
        "train.progress=false", f"train.num_threads={args.threads}",
        f"train.max_steps_per_epoch={args.search_steps}",
    ])
    result = search(cfg)
    save_search(result, out / "search")
    print(f"search: {result.seconds:.0f}s -> {result.arch.to_dict()['blocks']}", flush=True)
    return result.arch


def table(out: Path) -> str:
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("run_*.json"))]
    if not runs:
        return "no runs yet"
    domains = list(runs[0]["metrics"])
    lines = ["| model | IN placement (conv2-1..conv4-2) | seeds | "
             + " | ".join(f"{d} R1 / mAP" for d in domains) + " | unseen mean R1 / mAP |",
             "|---|---|---|" + "---|" * (len(domains) + 1)]
    order = {n: i for i, n in enumerate((*BASELINES, "child"))}
    for name in sorted({r["model"] for r in runs}, key=lambda n: order.get(n, 99)):
        rs = [r for r in runs if r["model"] == name]
        cells = []

        def ms(values):
            values = [100 * v for v in values]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.mean(values):.1f}±{sd:.1f}"

        for d in domains:
            cells.append(f"{ms([r['metrics'][d]['rank1'] for r in rs])} / "
                         f"{ms([r['metrics'][d]['mAP'] for r in rs])}")
        unseen = [d for d in domains if not d.endswith("(source)")]
        cells.append(f"{ms([np.mean([r['metrics'][d]['rank1'] for d in unseen]) for r in rs])} / "
                     f"{ms([np.mean([r['metrics'][d]['mAP'] for d in unseen]) for r in rs])}")
        blocks = ",".join(b[0] if b != "none" else "-" for b in rs[0]["arch"]["blocks"])
        conv1 = "IN" if rs[0]["arch"]["conv1_in"] else "BN"
        lines.append(f"| {name} | conv1 {conv1}; {blocks} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/nas_experiment")
    p.add_argument("--part", choices=["baselines", "child", "all"], default="all")
    p.add_argument("--table", action="store_true", help="only print the table of finished runs")
    p.add_argument("--sources", default="synthetic_a")
    p.add_argument("--targets", default="synthetic_b,synthetic_c,synthetic_d")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--img-width", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--search-epochs", type=int, default=6)
    p.add_argument("--search-mode", default="mixture")
    p.add_argument("--search-steps", type=int, default=0, help="cap on steps per search epoch (0: none)")
    p.add_argument("--search-seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reverse", action="store_true",
                   help="take the runs in reverse order (a second process meets the first halfway)")
    args = p.parse_args()
    out = Path(args.out)
    if args.table:
        print(table(out))
        return 0
    torch.set_num_threads(args.threads)
    out.mkdir(parents=True, exist_ok=True)
    source = load_dataset("+".join(args.sources.split(",")))
    domains = {f"{args.sources} (source)": source}
    domains.update({t: load_dataset(t) for t in args.targets.split(",")})
    seeds = [int(s) for s in args.seeds.split(",")]
    names = {"baselines": BASELINES, "child": ("child",), "all": (*BASELINES, "child")}[args.part]
    child = run_search(args, out) if "child" in names else None
    jobs = [(seed, name) for seed in seeds for name in names]
    for seed, name in reversed(jobs) if args.reverse else jobs:
        path = out / f"run_{name}_seed{seed}.json"
        try:  # claim the run so that parallel processes do not repeat it
            os.close(os.open(path.with_suffix(".lock"), os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            continue
        if path.is_file():
            continue
        record = train_and_eval(name, seed, args, source, domains, child)
        record.update(config=vars(args), torch=torch.__version__, threads=args.threads)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, path)
        print(f"{name} seed {seed}: {record['metrics']}", flush=True)
    print(table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
