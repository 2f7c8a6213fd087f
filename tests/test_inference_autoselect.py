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


def recording_make_runner(monkeypatch, built: list, inexact: tuple[str, ...] = ()):
    """Replace the runner factory autoselect uses by one that records each backend it builds
    (and adds 1e-3 to the outputs of the backends in ``inexact``)."""
    def make(backend, *args, **kwargs):
        built.append(backend)
        runner = make_runner(backend, *args, **kwargs)  # the real one, not an earlier stand-in
        return (lambda x: runner(x) + 1e-3) if backend in inexact else runner

    monkeypatch.setattr(autoselect, "make_runner", make)


def test_fp32_builds_no_candidate_that_cannot_be_exact(model, monkeypatch, tmp_path) -> None:
    # every backend "installed", the bf16/int8 ones even named explicitly: fp32 builds none of
    # them and never quantises
    built: list = []
    recording_make_runner(monkeypatch, built)
    monkeypatch.setattr(autoselect, "available_backends", lambda: list(autoselect.BACKEND_PRECISION))

    def no_quantiser(*args, **kwargs):
        raise AssertionError("the fp32 decision quantised a model")

    monkeypatch.setattr(autoselect, "quantize_onnx_int8", no_quantiser)
    monkeypatch.setattr(autoselect, "measure_throughput", fixed_speeds({"onnxruntime": 9.0}))
    for candidates in (None, list(autoselect.BACKEND_PRECISION)):
        built.clear()
        sel = autoselect.select_backend(model, SIZE, 8, "fp32", cache_dir=tmp_path,
                                        candidates=candidates, use_cache=False)
        assert built, "nothing was built"
        assert {autoselect.BACKEND_PRECISION[b] for b in built} == {"fp32"}, built
        assert {c.precision for c in sel.candidates} == {"fp32"}
        assert sel.backend == "onnxruntime" and sel.precision == "fp32"


def test_fused_is_built_only_when_onnxruntime_is_not_exact(model, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(autoselect, "_on_x86", lambda: True)
    monkeypatch.setattr(autoselect, "available_backends",
                        lambda: ["eager", "fused", "onnxruntime"])
    monkeypatch.setattr(autoselect, "measure_throughput",
                        fixed_speeds({"fused": 5.0, "onnxruntime": 9.0}))
    built: list = []
    recording_make_runner(monkeypatch, built)
    sel = autoselect.select_backend(model, SIZE, 8, "fp32", cache_dir=tmp_path, use_cache=False)
    assert "fused" not in built and sel.backend == "onnxruntime"
    fused = next(c for c in sel.candidates if c.backend == "fused")
    assert not fused.eligible and "not built" in fused.note and "fused" in sel.reason
    # onnxruntime off by 1e-3: fused is built after all, and taken
    built.clear()
    recording_make_runner(monkeypatch, built, inexact=("onnxruntime",))
    sel = autoselect.select_backend(model, SIZE, 8, "fp32", cache_dir=tmp_path, use_cache=False)
    assert "fused" in built and sel.backend == "fused"
    # candidates named by the caller are all built
    built.clear()
    recording_make_runner(monkeypatch, built)
    sel = autoselect.select_backend(model, SIZE, 8, "fp32", cache_dir=tmp_path, use_cache=False,
                                    candidates=["fused", "onnxruntime"])
    assert "fused" in built and sel.backend == "onnxruntime"


class FakeClock:
    """A timer that advances only when a fake runner "works"."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_runner(clock: FakeClock, costs, calls: list, name: str):
    """A runner taking ``costs[i]`` fake seconds on its i-th call (the last one thereafter)."""
    def run(x):
        clock.now += costs[min(len(calls_of(calls, name)), len(costs) - 1)]
        calls.append(name)
        return np.zeros((len(x), 4), np.float32)
    return run


def calls_of(calls: list, name: str) -> list:
    return [c for c in calls if c == name]


def test_measurement_keeps_to_its_budget() -> None:
    x = np.zeros((8, 3, *SIZE), np.float32)

    def measure(costs: dict, budget: float):
        clock, calls = FakeClock(), []
        runners = {n: fake_runner(clock, c, calls, n) for n, c in costs.items()}
        rates = autoselect.measure_throughput(runners, x, budget, clock=clock)
        return rates, {n: len(calls_of(calls, n)) for n in costs}, clock.now

    # 1/8 s a call (exact in binary): warm-ups (two for fused) take 0.5 s; a round of three
    # takes 0.75 s, each timed call after an untimed one of the same runner (the call before
    # was another's); a round starts only before 1.25 s have passed, so one round is timed
    # and the clock stops at 1.25 s
    rates, n, elapsed = measure({"fused": [0.125], "a": [0.125], "b": [0.125]}, 1.25)
    assert n == {"fused": 4, "a": 3, "b": 3} and elapsed == 1.25
    assert rates == pytest.approx({"fused": 64.0, "a": 64.0, "b": 64.0})
    # warm-ups alone over the budget: still exactly one timed round each, nothing more
    rates, n, elapsed = measure({"fused": [1.0], "a": [1.0]}, 0.5)
    assert n == {"fused": 4, "a": 3} and elapsed == pytest.approx(7.0)
    # a path whose warm-up is more than DROP_FACTOR times the quickest is not timed again,
    # its rate is its warm-up's; a path more than twice as slow in round one stops after it
    # (its second call settles, its third is timed)
    slow = 1.01 * autoselect.DROP_FACTOR * 0.1
    rates, n, _ = measure({"a": [0.1], "slow": [slow], "half": [0.1, 0.1, 0.25]}, 10.0)
    assert n["slow"] == 1 and rates["slow"] == pytest.approx(8 / slow)
    assert n["half"] == 3 and rates["half"] == pytest.approx(8 / 0.25)
    # a generous budget: seven rounds at most; the median round counts; a runner alone is
    # never settled (the call before a timed one is always its own)
    rates, n, _ = measure({"a": [0.5, 0.1, 0.1, 0.3, 0.2, 0.2, 0.2, 0.2]}, 1e6)
    assert n == {"a": 8} and rates["a"] == pytest.approx(8 / 0.2)


def test_every_timed_call_follows_a_call_of_the_same_runner() -> None:
    x = np.zeros((8, 3, *SIZE), np.float32)
    clock, calls = FakeClock(), []
    runners = {n: fake_runner(clock, [0.1], calls, n) for n in ("a", "b", "c")}
    autoselect.measure_throughput(runners, x, 0.0, clock=clock)
    # warm-ups a, b, c; then one round (budget 0) in which every runner is called twice in a
    # row, untimed then timed, since the call before was always another runner's
    assert calls == ["a", "b", "c", "a", "a", "b", "b", "c", "c"]


def test_selection_times_a_small_batch_within_the_budget(model, monkeypatch, tmp_path) -> None:
    seen: list = []

    def measure(runners, x, budget_s=0.0):
        seen.append((len(x), budget_s))
        return {name: 1.0 for name in runners}

    monkeypatch.setattr(autoselect, "measure_throughput", measure)
    autoselect.select_backend(model, SIZE, 64, cache_dir=tmp_path, candidates=["eager"],
                              use_cache=False, budget_s=1.5)
    autoselect.select_backend(model, SIZE, 3, cache_dir=tmp_path, candidates=["eager"],
                              use_cache=False)
    assert seen == [(autoselect.MEASURE_MAX_BATCH, 1.5), (3, autoselect.MEASURE_BUDGET_S)]


def test_one_off_work_runs_on_one_thread_and_the_count_is_restored(model, monkeypatch,
                                                                     tmp_path) -> None:
    seen: list = []
    real_export = autoselect.export_onnx

    def export(*args, **kwargs):
        seen.append(("export", torch.get_num_threads()))
        return real_export(*args, **kwargs)

    def measure(runners, x, budget_s=0.0):
        seen.append(("measure", torch.get_num_threads()))
        return {name: 1.0 for name in runners}

    monkeypatch.setattr(autoselect, "export_onnx", export)
    monkeypatch.setattr(autoselect, "measure_throughput", measure)
    torch.set_num_threads(2)
    try:
        sel = autoselect.select_backend(model, SIZE, 4, cache_dir=tmp_path, use_cache=False,
                                        candidates=["onnxruntime"])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    # the export traced on one thread; the paths were timed with the count asked for
    assert seen == [("export", 1), ("measure", 2)] and sel.backend == "onnxruntime"


def test_paths_slower_than_the_choice_are_not_gated(model, monkeypatch, tmp_path) -> None:
    gated: list = []
    real_check = autoselect.check_accuracy

    def check(reference, features, pids, camids, precision):
        gated.append(precision)
        return real_check(reference, features, pids, camids, precision)

    monkeypatch.setattr(autoselect, "check_accuracy", check)
    # the exact path is the fastest: the int8 one is timed but never gated
    monkeypatch.setattr(autoselect, "measure_throughput",
                        fixed_speeds({"fused": 900.0, "onnxruntime-int8": 100.0}))
    sel = autoselect.select_backend(model, SIZE, 8, "int8", cache_dir=tmp_path, use_cache=False,
                                    candidates=["fused", "onnxruntime-int8"])
    int8 = next(c for c in sel.candidates if c.backend == "onnxruntime-int8")
    assert sel.backend == "fused" and gated == [] and int8.gate is None
    assert "not gated" in int8.note
    # faster, it is gated (and, passing, taken)
    monkeypatch.setattr(autoselect, "measure_throughput",
                        fixed_speeds({"fused": 100.0, "onnxruntime-int8": 900.0}))
    sel = autoselect.select_backend(model, SIZE, 8, "int8", cache_dir=tmp_path, use_cache=False,
                                    candidates=["fused", "onnxruntime-int8"])
    assert gated == ["int8"] and sel.backend == "onnxruntime-int8"
    assert sel.candidates[1].gate["passed"]


def test_streams_follow_the_batch_size_and_are_part_of_the_key(model, monkeypatch, tmp_path) -> None:
    # two threads and a batch of 16: openvino is built with a stream per thread, and says so;
    # onnxruntime keeps one; a batch of 4 (2 images a stream) keeps one stream; the two
    # decisions are cached apart
    monkeypatch.setattr(autoselect, "measure_throughput",
                        fixed_speeds({"openvino": 500.0, "onnxruntime": 400.0}))
    both = ["onnxruntime", "openvino"]
    big = autoselect.select_backend(model, SIZE, 16, "fp32", num_threads=2, cache_dir=tmp_path,
                                    candidates=both)
    small = autoselect.select_backend(model, SIZE, 4, "fp32", num_threads=2, cache_dir=tmp_path,
                                      candidates=both)
    assert big.backend == small.backend == "openvino"
    assert big.runner.streams == 2 and "2 streams x 1 thread(s)" in big.reason
    assert small.runner.streams == 1 and "2 thread(s)" in small.reason and "streams" not in small.reason
    assert big.cache_file != small.cache_file
    ort = autoselect.select_backend(model, SIZE, 16, "fp32", num_threads=2, cache_dir=tmp_path,
                                    candidates=["onnxruntime"])
    assert ort.runner.streams == 1 and "streams" not in ort.reason
    again = autoselect.select_backend(model, SIZE, 16, "fp32", num_threads=2, cache_dir=tmp_path,
                                      candidates=both)
    assert again.from_cache and again.runner.streams == 2
    x = torch.randn(16, 3, *SIZE).numpy()
    np.testing.assert_allclose(again.runner(x), make_runner("eager", model, SIZE)(x), atol=1e-4)
