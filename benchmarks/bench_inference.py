"""Inference throughput of every omnireid path against torchreid's eager OSNet, in one process.

torchreid (PyPI ``torchreid==0.2.5``) is imported from a separate environment (``--torchreid-env``,
default /work/venv-tr) by appending its site-packages to ``sys.path`` *after* ours, so both models
run on the same torch build, in the same process, with the same thread count
(``torch.set_num_threads``; ONNX Runtime / OpenVINO get the same number) and the same allocator.
Both sides get the same weights: torchreid's model is built, then its state dict is loaded into
ours (the genuine checkpoint where one is given with ``--weights``).

Rounds are interleaved: each path runs once per round, medians are reported.

``--allocators both`` re-runs the script under glibc malloc and under tcmalloc (``LD_PRELOAD``),
so the effect of the allocator is visible and never credited to one side.

Examples::

    python benchmarks/bench_inference.py --model osnet_x1_0 --batch 16
    python benchmarks/bench_inference.py --model osnet_x0_25 --batch 64 --allocators both
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

TCMALLOC_CANDIDATES = [
    "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4",
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc.so.4",
]


def import_torchreid(env: str):
    sites = glob.glob(os.path.join(env, "lib", "python*", "site-packages"))
    if not sites:
        raise SystemExit(f"no torchreid environment at {env} (see benchmarks/README.md)")
    sys.path.append(sites[0])  # after ours: torch and numpy still come from this environment
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torchreid.reid.models.osnet as tr_osnet
        import torchreid.reid.models.osnet_ain as tr_osnet_ain
    return tr_osnet, tr_osnet_ain


def torchreid_model(name: str, env: str) -> torch.nn.Module:
    tr_osnet, tr_osnet_ain = import_torchreid(env)
    module = tr_osnet_ain if name.startswith("osnet_ain") else tr_osnet
    torch.manual_seed(0)
    model = getattr(module, name)(num_classes=1000, pretrained=False, loss="softmax")
    return model.eval()


def tr_runner(model):
    @torch.inference_mode()
    def run(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x)).numpy()
    return run


def jit_runner(fast_model, example: np.ndarray, onednn_graph: bool = False):
    """TorchScript trace + freeze + optimize_for_inference of the fused model (+ oneDNN graph)."""
    from omnireid.inference.fuse import EmbeddingModel

    torch.jit.enable_onednn_fusion(onednn_graph)
    x = torch.from_numpy(example).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        traced = torch.jit.trace(EmbeddingModel(fast_model).eval(), x, check_trace=False)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
        for _ in range(3):  # profiling runs (oneDNN graph compiles its partitions here)
            frozen(x)

    @torch.inference_mode()
    def run(a: np.ndarray) -> np.ndarray:
        return frozen(torch.from_numpy(a).contiguous(memory_format=torch.channels_last)).numpy()
    return run


def compile_runner(fast_model, example: np.ndarray):
    t = time.perf_counter()
    compiled = torch.compile(fast_model, dynamic=False)
    x = torch.from_numpy(example).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        compiled(x)
    print(f"  torch.compile: first call (compilation) {time.perf_counter() - t:.1f} s")

    @torch.inference_mode()
    def run(a: np.ndarray) -> np.ndarray:
        return compiled(torch.from_numpy(a).contiguous(memory_format=torch.channels_last)
                        ).embedding.numpy()
    return run


def compat_crops(compat: Path):
    """The real CUHK03 crops (preprocessed), identities and cameras."""
    from omnireid.inference.preprocess import open_rgb, preprocess

    folder = compat / "cuhk03_pair1_val"
    with open(folder / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    batch = torch.stack([preprocess(open_rgb(folder / r["path"])) for r in rows]).numpy()
    pids = np.array([int(r["pid"]) for r in rows])
    cams = np.array([int(r["camid"]) for r in rows])
    return batch, pids, cams


def mot17_crops(compat: Path, limit: int = 128) -> list:
    """Pedestrian crops from the MOT17 frames (another real dataset, used as "the user's own
    crops" for int8 calibration; never the crops accuracy is measured on)."""
    from PIL import Image

    crops = []
    for seq in sorted((compat / "mot17_mini").glob("MOT17-*")):
        gt = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2)
        for frame in sorted((seq / "img1").glob("*.jpg")):
            rows = gt[(gt[:, 0] == int(frame.stem)) & (gt[:, 6] == 1) & (gt[:, 7] == 1)
                      & (gt[:, 8] >= 0.5)]
            if not len(rows):
                continue
            with Image.open(frame) as im:
                im = im.convert("RGB")
                for left, top, w, h in rows[:, 2:6]:
                    crops.append(im.crop((max(0, int(left)), max(0, int(top)),
                                          int(left + w), int(top + h))))
    step = max(1, len(crops) // limit)
    return crops[::step][:limit]


def rank_on_crops(crops, runners: dict) -> dict:
    """rank-1/mAP (cam0 queries vs cam1 gallery, cosine) of each runner's features on the compat
    crops, with the library's evaluator (omnireid.evaluation.evaluate_rank), and the mean cosine
    to the first runner's features."""
    from omnireid.inference.accuracy import cosine_rows, retrieval_metrics

    batch, pids, cams = crops
    out, first = {}, None
    for name, run in runners.items():
        feats = np.concatenate([run(batch[i:i + 64]) for i in range(0, len(batch), 64)])
        first = feats if first is None else first
        r1, m, nq = retrieval_metrics(feats, pids, cams)
        out[name] = {"rank1": r1, "mAP": m, "queries": nq,
                     "mean_cosine_to_reference": float(cosine_rows(feats, first).mean())}
    return out


def print_rank_table(result: dict, reference: str, threads: int) -> None:
    """The rows of :func:`rank_on_crops` with their differences to ``reference``'s row."""
    from omnireid.inference.autoselect import cpu_signature

    ref = result[reference]
    width = max(len(name) for name in result)
    print(f"CPU: {cpu_signature()['name']}; osnet_x0_25 MSMT17 weights; CUHK03 crops "
          f"({ref['queries']} queries); {threads} threads")
    print(f"{'path':{width}s} {'rank-1':>7s} {'mAP':>7s} {'d rank-1':>9s} {'d mAP':>7s} {'cos':>7s}")
    for name, r in result.items():
        print(f"{name:{width}s} {r['rank1']:7.2f} {r['mAP']:7.2f} {r['rank1'] - ref['rank1']:+9.2f} "
              f"{r['mAP'] - ref['mAP']:+7.2f} {r['mean_cosine_to_reference']:7.4f}")


def run_once(args) -> dict:
    from omnireid.inference.bench import matmul_rates, time_interleaved
    from omnireid.inference.fuse import optimize_for_inference
    from omnireid.inference.runtime import TorchRunner, freeze_for_cpu, make_runner
    from omnireid.models import create_model, load_weights, model_complexity

    torch.set_num_threads(args.threads)
    tr = torchreid_model(args.model, args.torchreid_env)
    if args.weights:
        state = torch.load(args.weights, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        tr.load_state_dict(state, strict=False)
    ours = create_model(args.model).eval()
    load_weights(ours, tr.state_dict())  # the same weights on both sides

    size = (256, 128)
    x = torch.randn(args.batch, 3, *size, generator=torch.Generator().manual_seed(0)).numpy()
    runners = {"torchreid eager": tr_runner(tr), "omnireid eager": make_runner("eager", ours)}
    runners["BN folded, NCHW"] = TorchRunner(
        optimize_for_inference(ours, channels_last=False))
    runners["BN folded + NHWC"] = TorchRunner(optimize_for_inference(ours), channels_last=True)
    runners["+ jit.freeze, whole batch"] = make_runner("fused", ours, micro_batch=None)
    runners["fused (default: + micro-batches)"] = make_runner("fused", ours)
    mb = runners["fused (default: + micro-batches)"].micro_batch
    merged_model = optimize_for_inference(ours, merge_streams=True)
    merged = TorchRunner(merged_model, channels_last=True, micro_batch=mb)
    merged.model = freeze_for_cpu(merged.model, size)
    runners["fused + merged streams"] = merged
    runners["bf16 (fused)"] = make_runner("bf16", ours)
    runners["bf16 + merged streams"] = TorchRunner(  # casts a copy: merged_model stays fp32
        merged_model, dtype=torch.bfloat16, channels_last=True,
        micro_batch=runners["bf16 (fused)"].micro_batch)
    fast = optimize_for_inference(ours)
    optional = {
            "onednn": ("fused + jit + oneDNN graph", lambda: jit_runner(fast, x, onednn_graph=True)),
        "compile": ("fused + torch.compile", lambda: compile_runner(fast, x)),
    }
    failures = {}
    for key in args.extra:
        name, build = optional[key]
        try:
            runners[name] = build()
        except Exception as exc:  # report and go on: these paths are experiments
            failures[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            print(f"  {name}: failed ({failures[name]})")
        finally:
            torch.jit.enable_onednn_fusion(False)
    runners["onnxruntime"] = make_runner("onnxruntime", ours, size, num_threads=args.threads)
    int8_dir = Path(tempfile.mkdtemp(prefix="bench_int8_"))
    runners["onnxruntime-int8"] = make_runner("onnxruntime-int8", ours, size,
                                              num_threads=args.threads, cache_dir=int8_dir)
    int8_path = int8_dir / "model-int8.onnx"  # synthetic calibration crops
    if "tcmalloc" in os.environ.get("LD_PRELOAD", ""):
        # OpenVINO 2026.4 aborts (free(): invalid pointer) when tcmalloc is preloaded
        failures["openvino*"] = "skipped: OpenVINO crashes under LD_PRELOAD tcmalloc"
    else:
        runners["openvino"] = make_runner("openvino", ours, size, num_threads=args.threads)
        runners["openvino-bf16"] = make_runner("openvino-bf16", ours, size,
                                               num_threads=args.threads)
        runners["openvino-int8"] = make_runner("openvino-int8", int8_path, size,
                                               num_threads=args.threads)
    autos = {}
    if args.auto:
        from omnireid.inference.autoselect import select_backend

        for precision in ("fp32", "bf16", "int8"):
            t = time.perf_counter()
            sel = select_backend(ours, size, args.batch, precision, num_threads=args.threads,
                                 use_cache=False)
            autos[precision] = {"backend": sel.backend, "reason": sel.reason,
                                "seconds": time.perf_counter() - t}
            runners[f"auto {precision} ({sel.backend})"] = sel.runner
            print(f"  auto {precision}: {sel.backend} in {autos[precision]['seconds']:.1f} s")

    ref = runners["torchreid eager"](x)
    diffs = {name: float(np.abs(run(x) - ref).max()) for name, run in runners.items()}
    times = time_interleaved(runners, x, rounds=args.rounds, warmup=1)
    base = statistics.median(times["torchreid eager"])
    macs = model_complexity(ours, size).mult_adds * args.batch
    rows = []
    for name, t in times.items():
        med = statistics.median(t)
        rows.append({"path": name, "images_per_s": args.batch / med, "ratio": base / med,
                     "gmacs_per_s": macs / med / 1e9, "max_abs_diff": diffs[name],
                     "seconds": t})
    gemm = matmul_rates()
    for r in rows:
        r["precision"] = precision_of(r["path"])
        r["ceiling_share"] = r["gmacs_per_s"] / gemm[r["precision"]] if r["precision"] in gemm \
            else None
    result = {"model": args.model, "batch": args.batch, "threads": args.threads,
              "micro_batch": {"fused": mb, "bf16": runners["bf16 (fused)"].micro_batch},
              "gemm_gmacs_per_s": gemm, "baseline_gmacs_per_s": macs / base / 1e9,
              "ceiling_ratio": {k: v * base * 1e9 / macs for k, v in gemm.items()},
              "allocator": os.environ.get("LD_PRELOAD") or "glibc malloc", "rows": rows,
              "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "cpu": cpu_name(), "cpu_count": os.cpu_count(), "auto": autos,
              "load_average": os.getloadavg(), "failed_paths": failures}
    if args.accuracy:
        compat = Path(os.environ.get("OMNIREID_COMPAT_DIR", "/work/shared/compat"))
        crops = compat_crops(compat)
        keep = {k: runners[k] for k in ("torchreid eager", "fused (default: + micro-batches)",
                                          "onnxruntime", "bf16 (fused)", "openvino-bf16",
                                          "onnxruntime-int8", "openvino-int8")
                if k in runners}
        # int8 calibrated on real crops of another dataset (MOT17 pedestrians): the case of a
        # user who calibrates on their own crops
        from omnireid.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD
        from omnireid.inference.quantize import calibration_batch, quantize_onnx_int8

        calib = calibration_batch(mot17_crops(compat), size, IMAGENET_MEAN, IMAGENET_STD)
        real = quantize_onnx_int8(int8_dir / "model.onnx", int8_dir / "int8-mot17.onnx", calib)
        keep["onnxruntime-int8, MOT17 calibration"] = make_runner(
            "onnxruntime-int8", real, size, num_threads=args.threads)
        if "openvino" in runners:
            keep["openvino-int8, MOT17 calibration"] = make_runner(
                "openvino-int8", real, size, num_threads=args.threads)
        result["accuracy"] = rank_on_crops(crops, keep)
        result["calibration"] = {"synthetic": "64 synthetic crops (default)",
                                 "MOT17": f"{len(calib)} MOT17 pedestrian crops"}
    return result


def precision_of(path: str) -> str:
    if path.startswith("auto "):  # "auto int8 (openvino-bf16)": the chosen backend's
        path = path[path.index("(") + 1:-1]
    if "int8" in path:
        return "int8"
    if "bf16" in path:
        return "bf16"
    return "fp32"


def cpu_name() -> str:
    from omnireid.inference.autoselect import cpu_signature

    sig = cpu_signature()
    return (f"{sig['name']} (family {sig.get('cpu family', '?')} model "
            f"{sig.get('model number', '?')})")


def print_result(res: dict) -> None:
    print(f"\n{res['model']}  batch {res['batch']}  threads {res['threads']}  "
          f"allocator {res['allocator']}  (load average during run {res['load_average'][0]:.1f})")
    print(f"micro-batches: fused {res['micro_batch']['fused']}, bf16 {res['micro_batch']['bf16']}"
          " images")
    print(f"cpu: {res.get('cpu', res['machine'])}")
    print(f"{'path':40s} {'images/s':>9s} {'x torchreid':>11s} {'GMAC/s':>7s} "
          f"{'of ceiling':>15s} {'max|diff|':>10s}")
    for r in res["rows"]:
        share = r.get("ceiling_share")
        share = "-" if share is None else f"{100 * share:.0f}% of {r['precision']}"
        print(f"{r['path']:40s} {r['images_per_s']:9.1f} {r['ratio']:10.2f}x "
              f"{r['gmacs_per_s']:7.1f} {share:>15s} {r['max_abs_diff']:10.1e}")
    gemm, ceiling = res["gemm_gmacs_per_s"], res["ceiling_ratio"]
    print("dense 2048^3 matrix product on this machine (same run): "
          + ", ".join(f"{k} {v:.1f} GMAC/s" for k, v in gemm.items())
          + f"; torchreid eager runs at {res['baseline_gmacs_per_s']:.1f} GMAC/s, so a path "
          "running every mult-add at the matrix-product rate would be "
          + " / ".join(f"{v:.2f}x ({k})" for k, v in ceiling.items()) + " torchreid")
    for precision, a in res.get("auto", {}).items():
        print(f"auto {precision}: {a['reason']} [{a['seconds']:.1f} s to decide]")
    for name, why in res.get("failed_paths", {}).items():
        print(f"{name:32s} failed: {why}")
    acc = res.get("accuracy", {})
    ref = acc.get("torchreid eager")
    for name, m in acc.items():
        line = (f"  compat crops {name:38s} rank-1 {m['rank1']:.2f}  mAP {m['mAP']:.2f}  "
                f"cos {m['mean_cosine_to_reference']:.4f}")
        if ref is not None and m is not ref:
            # issue 14's goals: bf16 within 0.5, int8 within 1.0 point of fp32 (451 queries
            # here, one query = 0.22 rank-1 points; a figure to report, not a CI assertion)
            d1, dm = m["rank1"] - ref["rank1"], m["mAP"] - ref["mAP"]
            line += f"  (vs fp32: {d1:+.2f} / {dm:+.2f}"
            goal = {"bf16": 0.5, "int8": 1.0}.get(precision_of(name))
            if goal is not None:
                ok = "within" if max(-d1, -dm) <= goal else "outside"
                line += f", {ok} the {goal}-point goal"
            line += ")"
        print(line)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="osnet_x1_0")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--weights", help="torchreid checkpoint for both sides (default: seeded random)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--extra", default="",
                   help="optional paths: onednn (TorchScript + oneDNN graph), compile "
                        "(torch.compile, takes minutes to compile)")
    p.add_argument("--accuracy", action="store_true",
                   help="also rank-1/mAP of each path on the compat crops")
    p.add_argument("--auto", action="store_true",
                   help="also time what backend='auto' picks for fp32, bf16 and int8 (decided "
                        "afresh, not from the cache) and how long deciding took")
    p.add_argument("--allocators", choices=["current", "both"], default="current")
    p.add_argument("--torchreid-env", default="/work/venv-tr")
    p.add_argument("--json", help="write results here")
    args = p.parse_args()
    args.extra = [e for e in args.extra.split(",") if e]
    if args.allocators == "both":
        tcmalloc = next((c for c in TCMALLOC_CANDIDATES if os.path.exists(c)), None)
        if tcmalloc is None:
            raise SystemExit("tcmalloc not found (apt-get install libgoogle-perftools4)")
        results = []
        for preload in ("", tcmalloc):
            env = dict(os.environ, LD_PRELOAD=preload)
            out_json = f"/tmp/bench_inference_{os.getpid()}_{bool(preload)}.json"
            cmd = [sys.executable, __file__, "--model", args.model, "--batch", str(args.batch),
                   "--threads", str(args.threads), "--rounds", str(args.rounds),
                   "--extra", ",".join(args.extra), "--torchreid-env", args.torchreid_env,
                   "--json", out_json] + (["--weights", args.weights] if args.weights else []) \
                + (["--accuracy"] if args.accuracy else []) + (["--auto"] if args.auto else [])
            subprocess.run(cmd, env=env, check=True)
            results.append(json.loads(Path(out_json).read_text()))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        return 0
    res = run_once(args)
    print_result(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
