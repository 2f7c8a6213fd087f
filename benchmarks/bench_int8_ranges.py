"""What recording the int8 activation ranges costs against one plain pass over the same crops.

The int8 path's calibration (:func:`omnireid.inference.quantize.activation_ranges`) runs the
fp32 graph once over the calibration crops with a ReduceMin and a ReduceMax node on every float
tensor. This script times, on the same crops and in the same process, round after round:

- ``plain``: the exported fp32 graph in an optimised ONNX Runtime session (what inference costs);
- ``ranges``: :func:`activation_ranges` itself (session creation included, as in the decision);
- ``ranges at <level>``: the same with a lower ONNX Runtime optimisation level, to see whether
  the optimiser's layout changes are what the extra consumers cost.

``--profile`` then runs the ranges session once more with ONNX Runtime's profiler on and prints
the share of kernel time per operator type.

Examples::

    python benchmarks/bench_int8_ranges.py --model osnet_x1_0 --threads 1 --rounds 2
    python benchmarks/bench_int8_ranges.py --model osnet_x0_25 --profile
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="osnet_x1_0")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--size", type=int, nargs=2, default=(256, 128))
    p.add_argument("--profile", action="store_true", help="kernel time per operator type")
    a = p.parse_args()

    import onnxruntime as ort
    import torch
    from onnxruntime.quantization.shape_inference import quant_pre_process

    torch.set_num_threads(a.threads)
    import omnireid.inference.quantize as quantize
    from omnireid.inference.export import export_onnx
    from omnireid.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD
    from omnireid.inference.runtime import OrtRunner
    from omnireid.models import create_model

    size = tuple(a.size)
    torch.manual_seed(0)
    model = create_model(a.model).eval()
    calib = quantize.calibration_batch(None, size, IMAGENET_MEAN, IMAGENET_STD)
    step = 16
    levels = {"extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}

    class Level:  # what activation_ranges reads as ORT_ENABLE_ALL, replaced for one call
        def __init__(self, value):
            self.ORT_ENABLE_ALL = value

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "model.onnx", size)
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre))
        plain = OrtRunner(pre, a.threads)
        times: dict[str, list[float]] = {}

        def timed(name, fn):
            t = time.perf_counter()
            fn()
            times.setdefault(name, []).append(time.perf_counter() - t)

        for _ in range(a.rounds):
            timed("plain", lambda: [plain(calib[i:i + step]) for i in range(0, len(calib), step)])
            timed("ranges", lambda: quantize.activation_ranges(pre, calib, step))
            for name, value in levels.items():
                with mock.patch.object(ort, "GraphOptimizationLevel", Level(value)):
                    timed(f"ranges at {name}", lambda: quantize.activation_ranges(pre, calib, step))
        shares = profile(ort, pre, calib, step, Path(tmp)) if a.profile else None
    base = statistics.median(times["plain"])
    print(f"{a.model}, {len(calib)} calibration crops at {size[0]}x{size[1]}, {a.threads} thread(s), "
          f"{a.rounds} round(s), medians")
    for name, t in times.items():
        print(f"  {name:20s} {statistics.median(t):6.2f} s  ({statistics.median(t) / base:4.2f}x plain)"
              f"   rounds: {', '.join(f'{x:.2f}' for x in t)}")
    if shares:
        print("ranges session, kernel time per operator type (ONNX Runtime profiler):")
        total = sum(shares.values())
        for op, us in sorted(shares.items(), key=lambda kv: -kv[1])[:10]:
            print(f"  {op:20s} {us / 1e6:6.3f} s  {100 * us / total:5.1f} %")


def profile(ort, pre: Path, calib, step: int, folder: Path) -> dict[str, float]:
    """Microseconds of kernel time per operator type in one pass of the ranges graph (the graph
    :func:`activation_ranges` builds, rebuilt here by calling it with a session class that turns
    the profiler on)."""
    import collections
    import json

    import omnireid.inference.quantize as quantize

    sessions = []
    real = ort.InferenceSession

    def profiled(model, options, **kw):
        options.enable_profiling = True
        options.profile_file_prefix = str(folder / "ranges_profile")
        sessions.append(real(model, options, **kw))
        return sessions[-1]

    with mock.patch.object(ort, "InferenceSession", profiled):
        quantize.activation_ranges(pre, calib, step)
    events = json.loads(Path(sessions[0].end_profiling()).read_text())
    shares: dict[str, float] = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            shares[e["args"]["op_name"]] += e["dur"]
    return dict(shares)


if __name__ == "__main__":
    main()
