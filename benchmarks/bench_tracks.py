"""What a tracker pays per frame: embedding every ground-truth box of the mot17_mini frames.

The frames are decoded once beforehand (decoding 1920x1080 JPEGs is not counted). Each path
embeds the boxes of every frame with ``FeatureExtractor.embed_boxes`` (one batch per frame, as
``TrackBank.update`` does), in interleaved rounds after one warm-up pass. Reported per path:
wall seconds and process CPU seconds for one pass over all frames (medians over the rounds),
boxes per second, and ratios against the baseline, eager PyTorch on one thread, measured in the
same rounds. Alongside: the dense matrix-product rate of this machine on one thread and what a
path running every multiply-add of the model at that rate would achieve (the ceiling).

Run::

    python benchmarks/bench_tracks.py $OMNIREID_COMPAT_DIR/mot17_mini \\
        --weights $OMNIREID_COMPAT_DIR/weights/osnet_x0_25_msmt17.pth [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from omnireid.inference.autoselect import cpu_signature

# (label, backend, threads): torch's intra-op threads for the PyTorch backends, ONNX Runtime's
# own thread count for onnxruntime
PATHS = [
    ("eager, 1 thread", "eager", 1),
    ("fused, 1 thread", "fused", 1),
    ("onnxruntime, 1 thread", "onnxruntime", 1),
    ("eager, 2 threads", "eager", 2),
    ("fused, 2 threads", "fused", 2),
    ("onnxruntime, 2 threads", "onnxruntime", 2),
]


def load_frames(root: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    from omnireid.data.mot import find_mot_sequences, read_mot_sequence

    frames = []
    for folder in find_mot_sequences(root):
        for f in read_mot_sequence(folder).frames:
            with Image.open(f.image) as img:
                frames.append((np.asarray(img.convert("RGB")), f.boxes))
    return frames


def one_pass(extractor, frames, threads: int, torch_backend: bool) -> tuple[float, float]:
    if torch_backend:
        torch.set_num_threads(threads)
    wall, cpu = time.perf_counter(), time.process_time()
    for frame, boxes in frames:
        extractor.embed_boxes(frame, boxes)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("OMNIREID_COMPAT_DIR", ".")) / "mot17_mini"
    parser.add_argument("mot", nargs="?", default=str(default))
    parser.add_argument("--weights", required=True)
    parser.add_argument("--model", default="osnet_x0_25")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    from omnireid.inference import FeatureExtractor
    from omnireid.inference.bench import matmul_rates
    from omnireid.models import model_complexity

    frames = load_frames(Path(args.mot))
    boxes = sum(len(b) for _, b in frames)
    extractors = {}
    for label, backend, threads in PATHS:
        torch.set_num_threads(threads)
        kwargs = {"num_threads": threads} if backend == "onnxruntime" else {}
        extractors[label] = FeatureExtractor(args.model, weights=args.weights, backend=backend,
                                             **kwargs)
    reference = None
    for label, backend, threads in PATHS:  # warm-up, and every path gives the same embeddings
        torch.set_num_threads(threads)
        emb = np.concatenate([extractors[label].embed_boxes(f, b) for f, b in frames[:3]])
        reference = emb if reference is None else reference
        print(f"warm-up {label}: max |diff| to eager {np.abs(emb - reference).max():.1e}")
        one_pass(extractors[label], frames, threads, backend != "onnxruntime")
    times: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in PATHS}
    loads = []
    for _ in range(args.rounds):
        for label, backend, threads in PATHS:
            times[label].append(one_pass(extractors[label], frames, threads,
                                         backend != "onnxruntime"))
        loads.append(os.getloadavg()[0])

    torch.set_num_threads(1)
    first = extractors[PATHS[0][0]]
    macs = model_complexity(first.model, first.size).mult_adds
    gemm = matmul_rates()["fp32"]
    base_wall = statistics.median(t[0] for t in times[PATHS[0][0]])
    base_cpu = statistics.median(t[1] for t in times[PATHS[0][0]])
    print(f"\n{len(frames)} frames, {boxes} boxes, {args.model} at {first.size[0]}x"
          f"{first.size[1]}; CPU {cpu_signature()['name']}, {os.cpu_count()} logical cores, load average "
          f"during the rounds {min(loads):.1f}-{max(loads):.1f}; torch {torch.__version__}")
    print(f"{'path':24s} {'wall s':>7s} {'CPU s':>7s} {'boxes/s':>8s} {'wall vs base':>12s} "
          f"{'CPU vs base':>11s}")
    rows = []
    for label, _, _ in PATHS:
        wall = statistics.median(t[0] for t in times[label])
        cpu = statistics.median(t[1] for t in times[label])
        rows.append({"path": label, "wall_s": wall, "cpu_s": cpu, "boxes_per_s": boxes / wall,
                     "wall_ratio": base_wall / wall, "cpu_ratio": base_cpu / cpu,
                     "rounds": times[label]})
        print(f"{label:24s} {wall:7.2f} {cpu:7.2f} {boxes / wall:8.1f} {base_wall / wall:11.2f}x "
              f"{base_cpu / cpu:10.2f}x")
    ceiling = gemm * 1e9 / macs
    print(f"ceiling on one thread: {gemm:.1f} GMAC/s dense fp32 matrix product / {macs / 1e9:.3f} "
          f"GMAC per box = {ceiling:.0f} boxes/s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "frames": len(frames), "boxes": boxes, "model": args.model, "cpu": cpu_signature()["name"],
            "load_average": loads, "gemm_gmacs_per_s_1_thread": gemm,
            "ceiling_boxes_per_s_1_thread": ceiling, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
