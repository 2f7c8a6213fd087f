"""Child process of bench_loader.py: time one loader implementation on a list of images.

Runs under either interpreter (ours or the separate torchreid environment), so it imports only
the side it measures. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def omnireid_loader(samples, args):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from omnireid.data import Sample, build_train_loader

    records = [Sample(p, pid, cam) for p, pid, cam in samples]
    loader = build_train_loader(
        records, height=args.height, width=args.width, batch_size=args.batch_size, sampler="identity",
        num_instances=4, num_workers=args.workers, seed=0, random_flip=True, random_crop=True,
        random_erase=True, color_jitter=False)
    return loader, lambda batch: batch.images


def torchreid_loader(samples, args):
    import torch

    if args.impl == "torchreid":
        from torchreid.reid.data.datasets.dataset import ImageDataset
        from torchreid.reid.data.sampler import RandomIdentitySampler
        from torchreid.reid.data.transforms import build_transforms
    else:  # "minimal": a faithful stand-in written for this benchmark (see bench_loader.py)
        from _torchreid_minimal import ImageDataset, RandomIdentitySampler, build_transforms

    train = [(p, pid, cam, 0) for p, pid, cam in samples]
    transform, _ = build_transforms(args.height, args.width, transforms=["random_flip", "random_crop", "random_erase"])
    dataset = ImageDataset(train, query=train[:1], gallery=train[:1], transform=transform, mode="train", verbose=False)
    sampler = RandomIdentitySampler(train, batch_size=args.batch_size, num_instances=4)
    loader = torch.utils.data.DataLoader(dataset, sampler=sampler, batch_size=args.batch_size, shuffle=False,
                                         num_workers=args.workers, pin_memory=False, drop_last=True)
    return loader, lambda batch: batch["img"]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--impl", required=True, choices=["omnireid", "torchreid", "minimal"])
    p.add_argument("--list", required=True)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=128)
    args = p.parse_args()
    import torch

    samples = json.loads(Path(args.list).read_text())
    build = omnireid_loader if args.impl == "omnireid" else torchreid_loader
    loader, images_of = build(samples, args)
    count, start, n, shape = 0, None, 0, None
    t0 = time.perf_counter()
    while n < args.warmup + args.batches:
        for batch in loader:
            if n == args.warmup:
                start = time.perf_counter()
            elif n > args.warmup:
                count += images_of(batch).shape[0]
            shape = tuple(images_of(batch).shape)
            n += 1
            if n >= args.warmup + args.batches:
                break
    elapsed = time.perf_counter() - start
    print(json.dumps({"impl": args.impl, "images_per_s": count / elapsed, "batches": args.batches - 1,
                      "seconds": elapsed, "first_batches_s": start - t0, "batch_shape": shape,
                      "torch": torch.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
