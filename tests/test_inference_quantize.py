"""int8 calibration: the ranges recorded here are ONNX Runtime's own, and so is the graph written."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnxruntime.quantization import CalibrationDataReader, calibrate
from onnxruntime.quantization.shape_inference import quant_pre_process

from omnireid.inference import quantize
from omnireid.inference.export import export_onnx
from omnireid.inference.runtime import make_runner
from omnireid.models import create_model

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = (64, 32)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("quantize")
    path = export_onnx(create_model("osnet_x0_25").eval(), folder / "m.onnx", SIZE)
    pre = folder / "pre.onnx"
    quant_pre_process(str(path), str(pre))
    return path, pre, quantize.calibration_batch(None, SIZE, MEAN, STD)


def test_ranges_are_the_calibrators_ranges(exported, tmp_path) -> None:
    _, pre, calib = exported
    mine = quantize.activation_ranges(pre, calib, batch_size=16)

    name = onnx.load(str(pre), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.chunks = iter([calib[i:i + 16] for i in range(0, len(calib), 16)])

        def get_next(self):
            chunk = next(self.chunks, None)
            return None if chunk is None else {name: chunk}

    calibrator = calibrate.create_calibrator(pre, None, augmented_model_path=str(tmp_path / "aug.onnx"))
    calibrator.collect_data(Reader())
    reference = calibrator.compute_data()
    # the same tensors ...
    assert set(mine) == set(reference.data) and len(mine) > 300
    # ... with the same minima and maxima. Tolerance: the calibrator runs the reference kernels
    # without graph optimisations, this code the optimised ones (fused convolutions, blocked
    # layouts), whose sums round differently in the last bits of float32.
    for tensor, (low, high) in mine.items():
        ref_low, ref_high = (np.asarray(v, np.float32).reshape(-1) for v in reference.data[tensor].range_value)
        np.testing.assert_allclose(low, ref_low, rtol=1e-4, atol=1e-5, err_msg=tensor)
        np.testing.assert_allclose(high, ref_high, rtol=1e-4, atol=1e-5, err_msg=tensor)
    # the input's range is the crops' own (computed directly, exactly)
    first = onnx.load(str(pre), load_external_data=False).graph.input[0].name
    assert mine[first][0][0] == calib.min() and mine[first][1][0] == calib.max()


def test_int8_graph_is_the_one_the_calibrator_gives(exported, tmp_path, monkeypatch) -> None:
    path, _, calib = exported
    if not quantize._has_calibration_cache():
        pytest.fail("the installed ONNX Runtime (< 1.32) reads no calibration cache: the recorded ranges are not used")
    fast = quantize.quantize_onnx_int8(path, tmp_path / "fast.onnx", calib)
    monkeypatch.setattr(quantize, "_has_calibration_cache", lambda: False)
    slow = quantize.quantize_onnx_int8(path, tmp_path / "slow.onnx", calib)
    a, b = onnx.load(str(fast)), onnx.load(str(slow))
    # the same operators in the same order: the same quantised graph ...
    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
    assert sum(n.op_type == "QuantizeLinear" for n in a.graph.node) > 100
    # ... whose features agree (scales from ranges that differ by float rounding can move a
    # zero point or a rounding step by one, so the comparison is on direction, not bits)
    x = np.random.default_rng(0).standard_normal((8, 3, *SIZE)).astype(np.float32)
    fa = make_runner("onnxruntime-int8", fast, SIZE)(x)
    fb = make_runner("onnxruntime-int8", slow, SIZE)(x)
    cos = (fa * fb).sum(1) / np.linalg.norm(fa, axis=1) / np.linalg.norm(fb, axis=1)
    assert cos.min() > 0.999, cos


def test_average_pools_become_the_depthwise_convolutions_they_equal(exported, tmp_path) -> None:
    _, pre, _ = exported
    rewritten = tmp_path / "dw.onnx"
    rewritten.write_bytes(pre.read_bytes())
    before = onnx.load(str(pre)).graph.node
    pools = sum(n.op_type == "AveragePool" for n in before)
    assert pools == 2  # osnet's two 2x2 transition pools
    assert quantize.pools_as_depthwise_convs(rewritten) == pools
    after = onnx.load(str(rewritten)).graph.node
    assert not any(n.op_type == "AveragePool" for n in after)
    assert sum(n.op_type == "Conv" for n in after) == sum(n.op_type == "Conv" for n in before) + pools
    x = np.random.default_rng(1).standard_normal((4, 3, *SIZE)).astype(np.float32)

    def run(path):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]

    # the same function: a 2x2 mean is four products by 0.25 (exact) summed; only the order of
    # the float32 sums can differ
    np.testing.assert_allclose(run(rewritten), run(pre), rtol=1e-5, atol=1e-6)
    # and the quantised graph has no int8 average pooling left
    q = quantize.quantize_onnx_int8(exported[0], tmp_path / "q.onnx", exported[2])
    assert not any(n.op_type == "AveragePool" for n in onnx.load(str(q)).graph.node)


def test_a_padded_or_overlapping_pool_is_left_alone(tmp_path) -> None:
    pools = torch.nn.Sequential(torch.nn.AvgPool2d(3, stride=1, padding=1),
                                torch.nn.AvgPool2d(2, stride=1))
    path = tmp_path / "pools.onnx"
    torch.onnx.export(pools, torch.zeros(1, 4, 8, 8), str(path), dynamo=False)
    quant_pre_process(str(path), str(tmp_path / "pre.onnx"))
    assert quantize.pools_as_depthwise_convs(tmp_path / "pre.onnx") == 0
