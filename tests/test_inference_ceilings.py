"""The matrix-product ceilings of `omnireid bench`: each the faster of the libraries measured."""

from __future__ import annotations

import onnxruntime  # noqa: F401  # the dev extra installs it; missing must fail
import torch

from omnireid.inference import bench


def test_fp32_ceiling_is_the_faster_of_torch_and_onnxruntime(monkeypatch) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        measured = bench.matmul_rates(128, repeats=2)
        assert set(measured) >= {"fp32", "bf16"} and all(v > 0 for v in measured.values())
        # ONNX Runtime's product much faster than anything torch.mm can do: it sets the ceiling
        monkeypatch.setattr(bench, "_ort_fp32_matmul_rate", lambda n, best_of: 1e9)
        assert bench.matmul_rates(128, repeats=2)["fp32"] == 1e9
        # much slower, or not installed: torch.mm's rate stands
        monkeypatch.setattr(bench, "_ort_fp32_matmul_rate", lambda n, best_of: 1e-9)
        slow = bench.matmul_rates(128, repeats=2)["fp32"]
        monkeypatch.setattr(bench, "_ort_fp32_matmul_rate", lambda n, best_of: None)
        absent = bench.matmul_rates(128, repeats=2)["fp32"]
        assert slow > 1e-6 and absent > 1e-6
    finally:
        torch.set_num_threads(threads)


def test_onnxruntime_fp32_product_is_timed() -> None:
    rate = bench._ort_fp32_matmul_rate(64, lambda fn: (fn(), 1.0)[1])
    assert rate == 1.0


def test_interleaved_timing_settles_each_runner_before_timing_it() -> None:
    calls: list[str] = []

    def runner(name):
        def run(x):
            calls.append(name)
            return x
        return run

    times = bench.time_interleaved({"a": runner("a"), "b": runner("b")}, None, rounds=2, warmup=1)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 2
    assert {k: len(v) for k, v in times.items()} == {"a": 2, "b": 2}
    calls.clear()
    bench.time_interleaved({"a": runner("a")}, None, rounds=2, warmup=1)
    assert calls == ["a", "a", "a"]  # alone: nothing to settle from
