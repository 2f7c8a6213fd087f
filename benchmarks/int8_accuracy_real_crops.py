"""int8 accuracy on the real CUHK03 crops: OpenVINO's float operations in fp32 against bf16.

The ``openvino-int8`` path runs the int8 graph's remaining float operations in bf16 on CPUs with
native bf16. This script measures what that does to retrieval on real crops, beside fp32 and
ONNX Runtime's int8, with the library's evaluator (cam0 queries against cam1 gallery, cosine):
torchreid's genuine osnet_x0_25 MSMT17 weights, the CUHK03 crops of the compatibility material,
int8 calibrated on the default synthetic crops and on 128 MOT17 pedestrian crops (another real
dataset, standing in for a user's own crops). Needs ``$OMNIREID_COMPAT_DIR`` (default
``/work/shared/compat``).

    python benchmarks/int8_accuracy_real_crops.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    import bench_inference as bench  # a sibling script: the crops and the ranking

    from omnireid.inference.export import export_onnx
    from omnireid.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD
    from omnireid.inference.quantize import calibration_batch, quantize_onnx_int8
    from omnireid.inference.runtime import OpenVINORunner, make_runner
    from omnireid.models import create_model, load_weights
    torch.set_num_threads(args.threads)
    compat = Path(os.environ.get("OMNIREID_COMPAT_DIR", "/work/shared/compat"))
    state = torch.load(compat / "weights" / "osnet_x0_25_msmt17.pth", map_location="cpu",
                       weights_only=True)
    model = create_model("osnet_x0_25").eval()
    load_weights(model, {k: v for k, v in state.items() if not k.startswith("classifier.")})
    size = (256, 128)
    folder = Path(tempfile.mkdtemp(prefix="int8-accuracy-"))
    fp32 = export_onnx(model, folder / "model.onnx", size)
    graphs = {
        "synthetic calibration": quantize_onnx_int8(
            fp32, folder / "synthetic.onnx",
            calibration_batch(None, size, IMAGENET_MEAN, IMAGENET_STD)),
        "MOT17 calibration": quantize_onnx_int8(
            fp32, folder / "mot17.onnx",
            calibration_batch(bench.mot17_crops(compat), size, IMAGENET_MEAN, IMAGENET_STD)),
    }
    runners = {"onnxruntime (fp32)": make_runner("onnxruntime", fp32, size, num_threads=args.threads)}
    for calib, path in graphs.items():
        runners[f"onnxruntime-int8, {calib}"] = make_runner("onnxruntime-int8", path, size,
                                                            num_threads=args.threads)
        runners[f"openvino-int8 float ops fp32, {calib}"] = OpenVINORunner(path, args.threads)
        runners[f"openvino-int8 float ops bf16, {calib}"] = OpenVINORunner(path, args.threads,
                                                                            bf16=True)
    result = bench.rank_on_crops(bench.compat_crops(compat), runners)
    bench.print_rank_table(result, "onnxruntime (fp32)", args.threads)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
