"""int8 on the real CUHK03 crops: activation ranges recorded by omnireid against ONNX Runtime's own
calibrator, for the same calibration crops (the default synthetic ones, and MOT17 pedestrians).

Run from the repository root:
    OMNIREID_COMPAT_DIR=../shared/compat PYTHONPATH=src python \
        benchmarks/results/autoselect_int8_ranges/accuracy_probe.py
"""

import json
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench_inference import compat_crops, mot17_crops, rank_on_crops  # noqa: E402

from omnireid.inference import quantize as q  # noqa: E402
from omnireid.inference.export import export_onnx  # noqa: E402
from omnireid.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from omnireid.inference.runtime import make_runner  # noqa: E402
from omnireid.models import create_model, load_weights  # noqa: E402

torch.set_num_threads(1)
compat = Path(os.environ.get("OMNIREID_COMPAT_DIR", "../shared/compat"))
size = (256, 128)
model = create_model("osnet_x0_25", num_classes=1)
load_weights(model, compat / "weights" / "osnet_x0_25_msmt17.pth")
model.eval()
tmp = Path(tempfile.mkdtemp())
onnx_path = export_onnx(model, tmp / "m.onnx", size)
runners = {"fp32 onnxruntime": make_runner("onnxruntime", onnx_path, size, num_threads=1)}
for label, images in [("synthetic", None), ("MOT17", mot17_crops(compat))]:
    calib = q.calibration_batch(images, size, IMAGENET_MEAN, IMAGENET_STD)
    fast = q.quantize_onnx_int8(onnx_path, tmp / f"fast-{label}.onnx", calib)
    has_cache = q._has_calibration_cache
    q._has_calibration_cache = lambda: False  # the quantiser's own calibrator
    slow = q.quantize_onnx_int8(onnx_path, tmp / f"slow-{label}.onnx", calib)
    q._has_calibration_cache = has_cache
    for backend in ("onnxruntime-int8", "openvino-int8"):
        runners[f"{backend}, {label}, ranges recorded here"] = make_runner(backend, fast, size, num_threads=1)
        runners[f"{backend}, {label}, ORT calibrator"] = make_runner(backend, slow, size, num_threads=1)
result = rank_on_crops(compat_crops(compat), runners)
for name, r in result.items():
    print(f"{name:52s} rank-1 {r['rank1']:6.2f} mAP {r['mAP']:6.2f} "
          f"cosine to fp32 {r['mean_cosine_to_reference']:.4f} ({r['queries']} queries)")
print(json.dumps(result))
