"""Exported ONNX / OpenVINO models give PyTorch's embeddings, at any batch size."""

from __future__ import annotations

import json

import numpy as np
import onnx  # the dev extra installs the deploy packages; missing must fail
import onnxruntime  # noqa: F401
import openvino  # noqa: F401
import pytest
import torch

from omnireid.cli import main
from omnireid.inference.export import export_onnx, export_openvino
from omnireid.inference.runtime import check_parity, make_runner
from omnireid.models import create_model, save_weights
from tests.test_inference_fuse import randomize_norms

# numerics of the fast paths depend on the instruction set: also run with AVX2 forced (make test-isa)
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.isa]

SIZE = (64, 32)


def test_onnx_dynamic_batch_parity(tmp_path) -> None:
    torch.manual_seed(0)
    model = randomize_norms(create_model("osnet_ain_x0_25", num_classes=4))
    path = export_onnx(model, tmp_path / "m.onnx", SIZE)
    runner = make_runner("onnxruntime", path)
    for batch in (1, 5):
        x = torch.randn(batch, 3, *SIZE)
        with torch.no_grad():
            ref = model(x).embedding.numpy()
        out = runner(x.numpy())
        assert out.shape == (batch, 512)
        diff = np.abs(out - ref).max()
        print(f"onnx batch {batch}: max abs diff {diff:.2e}")
        assert diff < 1e-4
    report = check_parity(model, path, SIZE, batch_sizes=(2,))
    assert report.max_abs_diff < 1e-4 and report.backend == "onnxruntime"


def test_openvino_parity(tmp_path) -> None:
    torch.manual_seed(1)
    model = randomize_norms(create_model("osnet_x0_25"))
    path = export_openvino(model, tmp_path / "ir" / "m.xml", SIZE)
    assert path.is_file() and path.with_suffix(".bin").is_file()
    report = check_parity(model, path, SIZE, batch_sizes=(1, 3))
    print(f"openvino max abs diff {report.max_abs_diff:.2e}")
    assert report.max_abs_diff < 1e-4


def test_export_cli(tmp_path, capsys) -> None:
    torch.manual_seed(2)
    weights = save_weights(randomize_norms(create_model("osnet_x0_25", num_classes=3)),
                           tmp_path / "w.pth", layout="torchreid")
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", "osnet_x0_25", "--weights", str(weights), "-o", str(out),
                 "--input", "64x32"]) == 0
    text = capsys.readouterr().out
    assert "max abs diff" in text and out.is_file()
    summary = json.loads(out.with_suffix(".export.json").read_text())
    assert summary["max_abs_diff"] < 1e-4
    # float rounding differs between ONNX Runtime and PyTorch (float32 differences are ~1e-7, far
    # above 1e-12): a near-zero tolerance must fail
    assert main(["export", "--model", "osnet_x0_25", "-o", str(out), "--input", "64x32",
                 "--tolerance", "1e-12"]) == 2
    assert "differs from PyTorch" in capsys.readouterr().err
    # a tolerance of 0 is refused as a bad option value before anything runs
    assert main(["export", "--model", "osnet_x0_25", "-o", str(out), "--input", "64x32",
                 "--tolerance", "0"]) == 2
    assert "--tolerance must be > 0" in capsys.readouterr().err


def test_int8_export_openvino_and_gate(tmp_path, capsys) -> None:
    from tests.test_inference_autoselect import outlier_model

    torch.manual_seed(3)
    weights = save_weights(randomize_norms(create_model("osnet_x0_25", num_classes=3)),
                           tmp_path / "w.pth", layout="torchreid")
    out = tmp_path / "ir" / "m.xml"
    assert main(["export", "--model", "osnet_x0_25", "--weights", str(weights), "-o", str(out),
                 "--input", "64x32", "--format", "openvino", "--precision", "int8"]) == 0
    text = capsys.readouterr().out
    assert "int8 accuracy gate" in text and "passed" in text
    summary = json.loads(out.with_suffix(".export.json").read_text())
    assert summary["precision"] == "int8" and summary["gate"]["passed"]
    assert summary["calibration"] == "synthetic crops"
    # int8 really ran: not equal to fp32, but close in direction
    assert summary["max_abs_diff"] > 1e-4 and summary["min_cosine"] > 0.95
    assert "FakeQuantize" in out.read_text()
    # the same int8 graph as ONNX; a model whose int8 form is broken is refused
    bad = save_weights(outlier_model(), tmp_path / "bad.pth")
    assert main(["export", "--model", "osnet_x0_25", "--weights", str(bad), "-o",
                 str(tmp_path / "bad.onnx"), "--input", "64x32", "--precision", "int8"]) == 2
    assert "accuracy gate" in capsys.readouterr().err
    assert not (tmp_path / "bad.onnx").exists()  # refused: not left to be deployed
    assert not json.loads((tmp_path / "bad.export.json").read_text())["gate"]["passed"]


def test_export_takes_the_input_size_of_known_weights(tmp_path, monkeypatch, capsys) -> None:
    from omnireid.models.weights import KNOWN_WEIGHTS, KnownWeights, Preprocessing, sha256_of

    torch.manual_seed(0)
    weights = save_weights(create_model("osnet_x0_25"), tmp_path / "w.pth")
    entry = KnownWeights("w-known.pth", sha256_of(weights), "osnet_x0_25", "tiny", 0,
                         Preprocessing((48, 24)))
    monkeypatch.setitem(KNOWN_WEIGHTS, entry.key, entry)
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", "osnet_x0_25", "--weights", str(weights), "-o", str(out)]) == 0
    report = json.loads(out.with_suffix(".export.json").read_text())
    assert report["input"] == [48, 24]
    dims = [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [3, 48, 24]
