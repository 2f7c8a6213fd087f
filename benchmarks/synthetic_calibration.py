"""Calibrate the synthetic benchmark: how hard is each domain, and does training/transfer matter?

Measures, on the test split of each synthetic domain:
  1. colour-histogram baselines (HSV histograms of 6 horizontal stripes, Hellinger distance), on
     the whole crop and on its centre after grey-world colour correction;
  2. a randomly initialised osnet_x0_25;
  3. osnet_x0_25 trained for a few epochs on CPU (cross-entropy, plain loop) on domain A,
     then evaluated on every domain (cross-domain transfer).

Usage:
    PYTHONPATH=src python benchmarks/synthetic_calibration.py [--domains a b c d] [--epochs 6]
Writes a JSON with all numbers to --out (default benchmarks/results/synthetic_calibration.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from omnireid.data import build_test_loader, build_train_loader, load_dataset  # noqa: E402


def evaluate_rank_numpy(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=10):
    """Market-1501 protocol: drop gallery images of the same id and camera; CMC and mAP."""
    order = np.argsort(distmat, axis=1, kind="stable")
    cmc_all, aps = [], []
    for i in range(len(q_pids)):
        o = order[i]
        keep = ~((g_pids[o] == q_pids[i]) & (g_camids[o] == q_camids[i]))
        match = (g_pids[o] == q_pids[i])[keep].astype(np.float64)
        if not match.any():
            continue
        cmc = match.cumsum()
        cmc[cmc > 1] = 1
        cmc_all.append(cmc[:max_rank])
        hits = match.cumsum()
        precision = hits / np.arange(1, len(match) + 1)
        aps.append((precision * match).sum() / match.sum())
    cmc = np.mean(np.stack(cmc_all), axis=0)
    return {"rank1": float(cmc[0]), "rank5": float(cmc[4]), "mAP": float(np.mean(aps)), "num_valid_queries": len(aps)}


def evaluate(distmat, query, gallery):
    try:
        from omnireid.evaluation import evaluate_rank  # noqa: F401  (preferred when present)
    except ImportError:
        evaluate_rank = None
    args = (distmat, np.array([s.pid for s in query]), np.array([s.pid for s in gallery]),
            np.array([s.camid for s in query]), np.array([s.camid for s in gallery]))
    if evaluate_rank is not None:
        r = evaluate_rank(*args)
        get = (lambda k: r[k]) if isinstance(r, dict) else (lambda k: getattr(r, k))
        try:
            cmc = get("cmc")
            return {"rank1": float(cmc[0]), "rank5": float(cmc[4]), "mAP": float(get("mAP"))}
        except (KeyError, AttributeError):
            pass
    return evaluate_rank_numpy(*args)


def histogram_features(samples, stripes=6, bins=(8, 4, 4), centre_grey_world=False):
    """HSV histograms of horizontal stripes, square-rooted (Hellinger).

    ``centre_grey_world``: keep the central half of the columns (mostly the person) and divide out
    the image's mean colour first (grey-world), a stronger hand-made baseline.
    """
    feats = []
    for s in samples:
        rgb = np.asarray(Image.open(s.path).convert("RGB").resize((32, 96)), dtype=np.float32)
        if centre_grey_world:
            rgb = rgb[:, 8:24]
            rgb = rgb / np.maximum(rgb.reshape(-1, 3).mean(0), 1.0) * 128.0
        hsv = np.asarray(Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).convert("HSV"))
        parts = []
        for k in range(stripes):
            band = hsv[k * 96 // stripes:(k + 1) * 96 // stripes].reshape(-1, 3)
            h, _ = np.histogramdd(band, bins=bins, range=((0, 256), (0, 256), (0, 256)))
            parts.append(h.ravel() / max(h.sum(), 1))
        feats.append(np.sqrt(np.concatenate(parts)))  # Hellinger
    return np.stack(feats).astype(np.float32)


def euclidean(qf, gf):
    d = (qf ** 2).sum(1)[:, None] + (gf ** 2).sum(1)[None, :] - 2 * qf @ gf.T
    return np.maximum(d, 0)


@torch.no_grad()
def cnn_features(model, samples, height, width):
    model.eval()
    loader = build_test_loader(samples, height=height, width=width, batch_size=128, num_workers=2)
    out = []
    for batch in loader:
        out.append(model(batch.images).embedding.float())
    f = torch.cat(out)
    return torch.nn.functional.normalize(f, dim=1).numpy()


def cosine_dist(qf, gf):
    return 1.0 - qf @ gf.T


def train_short(model, dataset, epochs, height, width, seed):
    torch.manual_seed(seed)
    loader = build_train_loader(dataset.train, height=height, width=width, batch_size=32, sampler="random",
                                num_workers=2, seed=seed, random_flip=True, random_crop=True)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    model.train()
    start, step, epoch, seen = time.time(), 0, 0, 0
    losses = []
    scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * len(loader), pct_start=0.15)
    while epoch < epochs:
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            out = model(batch.images)
            loss = torch.nn.functional.cross_entropy(out.logits, batch.pids, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            scheduler.step()
            step += 1
            seen += len(batch)
            losses.append(loss.item())
        epoch += 1
        print(f"  epoch {epoch}: steps {step}, loss {np.mean(losses[-20:]):.3f}, {time.time() - start:.0f}s", flush=True)
    return {"steps": step, "images_seen": seen, "epochs": epoch, "seconds": round(time.time() - start, 1),
            "final_loss": float(np.mean(losses[-20:]))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--domains", nargs="+", default=["a", "b", "c", "d"])
    p.add_argument("--train-domain", default="a")
    p.add_argument("--epochs", type=int, default=6, help="training epochs (fixed work, so results do not depend on load)")
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--cache", default=None, help="synthetic cache folder")
    p.add_argument("--skip-cnn", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/synthetic_calibration.json")
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    results = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "torch": torch.__version__, "input": f"{args.height}x{args.width}", "domains": {}}
    data = {}
    for d in args.domains:
        t = time.time()
        data[d] = load_dataset(f"synthetic_{d}", args.cache)
        print(f"synthetic_{d}: loaded/generated in {time.time() - t:.1f}s")
    for d, ds in data.items():
        for key, cgw in (("colour_histogram", False), ("colour_histogram_centre_greyworld", True)):
            qf = histogram_features(ds.query, centre_grey_world=cgw)
            gf = histogram_features(ds.gallery, centre_grey_world=cgw)
            r = evaluate(euclidean(qf, gf), ds.query, ds.gallery)
            results["domains"].setdefault(d, {})[key] = r
            print(f"[{d}] {key}: {r}")
    if not args.skip_cnn:
        from omnireid.models import create_model

        torch.manual_seed(args.seed)
        for d, ds in data.items():
            model = create_model("osnet_x0_25", num_classes=10)
            r = evaluate(cosine_dist(cnn_features(model, ds.query, args.height, args.width),
                                     cnn_features(model, ds.gallery, args.height, args.width)), ds.query, ds.gallery)
            results["domains"][d]["osnet_x0_25_random_init"] = r
            print(f"[{d}] random-init osnet_x0_25: {r}")
        src = data[args.train_domain]
        torch.manual_seed(args.seed)
        model = create_model("osnet_x0_25", num_classes=src.num_train_pids)
        print(f"training osnet_x0_25 on synthetic_{args.train_domain} for {args.epochs} epochs")
        results["training"] = dict(train_short(model, src, args.epochs, args.height, args.width, args.seed),
                                   domain=args.train_domain)
        for d, ds in data.items():
            r = evaluate(cosine_dist(cnn_features(model, ds.query, args.height, args.width),
                                     cnn_features(model, ds.gallery, args.height, args.width)), ds.query, ds.gallery)
            results["domains"][d][f"osnet_x0_25_trained_on_{args.train_domain}"] = r
            print(f"[{d}] osnet_x0_25 trained on {args.train_domain}: {r}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
