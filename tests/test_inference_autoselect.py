"""backend="auto": exact paths for fp32, accuracy gates for int8, a cache keyed by CPU and versions.

Timings are replaced by fixed numbers (``measure_throughput`` is monkeypatched), so every test
decides the same way on any machine and none depends on how busy the machine is.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from omnireid.inference import FeatureExtractor, autoselect
from omnireid.inference.accuracy import AccuracyGateError
from omnireid.inference.runtime import make_runner
from omnireid.models import create_model

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = (64, 32)


def fixed_speeds(rates: dict[str, float], calls: list | None = None):
    """A stand-in for measure_throughput: the given images/s (1.0 for anything else)."""
    def measure(runners, x, budget_s=0.0):
        if calls is not None:
            calls.append(sorted(runners))
        return {name: rates.get(name, 1.0) for name in runners}
    return measure


@pytest.fixture()
def model():
    torch.manual_seed(0)
    return create_model("osnet_x0_25").eval()


def outlier_model(outlier: float = 1e4) -> torch.nn.Module:
    """A model that int8 quantisation breaks and fp32 does not notice: the stem's first channel
    carries ``outlier`` that every following layer ignores (zero weights). One int8 range per
    tensor then spends its 256 steps on that channel and rounds every other one to zero."""
    torch.manual_seed(0)
    m = create_model("osnet_x0_25").eval()
    with torch.no_grad():
        m.conv1.bn.bias[0] = outlier
        block = m.conv2[0]
        block.conv1.conv.weight[:, 0] = 0
        block.downsample.conv.weight[:, 0] = 0
    return m


def test_fp32_picks_only_exact_paths(model, monkeypatch, tmp_path) -> None:
    # onnxruntime is made inexact (1e-3 added) and the fastest; fp32 must not take it
    real = autoselect.make_runner

    def make(backend, *args, **kwargs):
        runner = real(backend, *args, **kwargs)
        if backend == "onnxruntime":
            return lambda x: runner(x) + 1e-3
        return runner

    monkeypatch.setattr(autoselect, "make_runner", make)
    monkeypatch.setattr(autoselect, "measure_throughput",
                        fixed_speeds({"onnxruntime": 500.0, "bf16": 400.0, "fused": 100.0,
                                      "openvino": 50.0}))
    sel = autoselect.select_backend(model, SIZE, 8, "fp32", cache_dir=tmp_path,
                                    candidates=["fused", "bf16", "onnxruntime", "openvino"])
    assert sel.backend == "fused"
    by_name = {c.backend: c for c in sel.candidates}
    assert "bf16" not in by_name  # not an fp32 path: never a candidate
    assert not by_name["onnxruntime"].eligible and "not exact" in by_name["onnxruntime"].note
    assert by_name["openvino"].eligible
    x = torch.randn(3, 3, *SIZE).numpy()
    np.testing.assert_allclose(sel.runner(x), make_runner("eager", model, SIZE)(x), atol=1e-4)
    # asked for bf16, the bf16 path is admitted (it passes its gate) and is now the fastest
    sel = autoselect.select_backend(model, SIZE, 8, "bf16", cache_dir=tmp_path,
                                    candidates=["fused", "bf16"])
    assert sel.backend == "bf16" and sel.candidates[1].gate["passed"]


def test_int8_gate_refuses_a_model_it_breaks(monkeypatch, tmp_path, caplog) -> None:
    monkeypatch.setattr(autoselect, "measure_throughput",
                        fixed_speeds({"onnxruntime-int8": 900.0, "fused": 100.0}))
    # the same network without the outlier passes the int8 gate and, being fastest, is chosen ...
    plain = outlier_model(0.0)
    sel = autoselect.select_backend(plain, SIZE, 8, "int8", cache_dir=tmp_path,
                                    candidates=["fused", "onnxruntime-int8"])
    assert sel.backend == "onnxruntime-int8", sel.reason
    # ... with it, fp32 gives the same embeddings, int8 does not pass: auto takes the exact
    # path and says why
    broken = outlier_model()
    x = torch.randn(2, 3, *SIZE).numpy()
    np.testing.assert_allclose(make_runner("eager", broken, SIZE)(x),
                               make_runner("eager", plain, SIZE)(x), rtol=1e-5, atol=1e-6)
    with caplog.at_level(logging.INFO, logger="omnireid.inference.autoselect"):
        sel = autoselect.select_backend(broken, SIZE, 8, "int8", cache_dir=tmp_path,
                                        candidates=["fused", "onnxruntime-int8"])
    assert sel.backend == "fused"
    int8 = next(c for c in sel.candidates if c.backend == "onnxruntime-int8")
    assert not int8.eligible and not int8.gate["passed"]
    assert "accuracy gate failed" in int8.note
    assert any("onnxruntime-int8" in r.getMessage() and "gate" in r.getMessage()
               for r in caplog.records)
    # named explicitly, the int8 backend is refused with the numbers
    with pytest.raises(AccuracyGateError, match="mean cosine"):
        FeatureExtractor(broken, backend="onnxruntime-int8", size=SIZE)
    # the caller's own labelled crops replace the synthetic gate crops (these, from one camera
    # only, cannot be split into queries and gallery: the gate says so)
    from omnireid.inference.quantize import synthetic_crops

    one_camera = synthetic_crops(4, 1, seed=5, size=SIZE)
    with pytest.raises(ValueError, match="two cameras"):
        FeatureExtractor(plain, backend="onnxruntime-int8", size=SIZE, gate_crops=one_camera)


def test_cache_is_keyed_by_cpu_and_library_versions(model, monkeypatch, tmp_path) -> None:
    calls: list = []
    monkeypatch.setattr(autoselect, "measure_throughput", fixed_speeds({"eager": 5.0}, calls))
    cpu = {"name": "CPU A", "flags": "f1", "cpus": 2}
    versions = dict(autoselect.library_versions())
    monkeypatch.setattr(autoselect, "cpu_signature", lambda: dict(cpu))
    monkeypatch.setattr(autoselect, "library_versions", lambda: dict(versions))

    def select():  # one cheap candidate: this test is about when measuring happens
        return autoselect.select_backend(model, SIZE, 4, cache_dir=tmp_path,
                                         candidates=["eager"])

    first = select()
    assert not first.from_cache and len(calls) == 1 and first.backend == "eager"
    record = json.loads(open(first.cache_file).read())
    assert record["key"]["cpu"]["name"] == "CPU A" and record["backend"] == "eager"
    again = select()
    assert again.from_cache and len(calls) == 1 and again.backend == "eager"
    cpu["name"] = "CPU B"  # another CPU: measured again
    assert not select().from_cache and len(calls) == 2
    cpu["flags"] = "f2"  # same name, other instruction set
    assert not select().from_cache and len(calls) == 3
    versions["onnxruntime"] = "0.0.1"  # a library upgrade: measured again
    assert not select().from_cache and len(calls) == 4
    cpu.update(name="CPU A", flags="f1")
    versions["onnxruntime"] = record["key"]["libraries"]["onnxruntime"]
    assert select().from_cache and len(calls) == 4  # the first machine's entry is still there
    # a different thread count or batch size is another key too
    torch.set_num_threads(2)
    try:
        assert not select().from_cache and len(calls) == 5
    finally:
        torch.set_num_threads(1)
    assert not autoselect.select_backend(model, SIZE, 8, cache_dir=tmp_path,
                                         candidates=["eager"]).from_cache


def test_extractor_defaults_to_auto(model, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("OMNIREID_AUTOSELECT_CACHE", str(tmp_path))
    monkeypatch.setattr(autoselect, "measure_throughput", fixed_speeds({"fused": 10.0}))
    monkeypatch.setattr(autoselect, "available_backends", lambda: ["eager", "fused", "bf16"])
    fe = FeatureExtractor(model, size=SIZE, normalize=False)
    assert fe.backend == "fused" and fe.selection is not None
    assert "fused" in fe.selection.reason and "exact" in fe.selection.reason
    x = torch.randn(2, 3, *SIZE)
    np.testing.assert_allclose(fe(x), make_runner("eager", model, SIZE)(x.numpy()), atol=1e-4)
    assert list((tmp_path / "autoselect").glob("*.json"))
    with pytest.raises(ValueError, match="precision"):
        FeatureExtractor(model, size=SIZE, precision="fp8")
