"""PyTorch runners: micro-batching splits batches without changing any embedding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from omnireid.errors import UsageError
from omnireid.inference.export import export_onnx
from omnireid.inference.runtime import (
    MICRO_BATCH_ELEMENTS_PER_THREAD,
    ORT_SPIN_ENV,
    OrtRunner,
    TorchRunner,
    auto_micro_batch,
    cpu_has_bf16,
    make_runner,
    widest_activation,
)
from omnireid.models import create_model

# numerics of the fast paths depend on the instruction set: also run with AVX2 forced (make test-isa)
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.isa]


class BatchRecorder(nn.Module):
    """Returns each image's per-channel mean times its index in the whole input, and records
    the batch sizes it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(x))
        return x.mean((2, 3))


def test_runner_splits_into_micro_batches_in_order() -> None:
    rec = BatchRecorder()
    runner = TorchRunner(rec, micro_batch=3)
    x = np.random.default_rng(0).standard_normal((7, 3, 4, 2)).astype(np.float32)
    out = runner(x)
    assert rec.calls == [3, 3, 1]
    np.testing.assert_allclose(out, x.mean((2, 3)), rtol=1e-6)
    rec.calls.clear()
    TorchRunner(rec, micro_batch=None)(x)
    assert rec.calls == [7]


def test_widest_activation_from_the_architecture() -> None:
    # osnet_x1_0 at 256x128: the stem's 7x7 stride-2 conv gives 64 x 128 x 64 values, and stage 2
    # gives 256 x 64 x 32, the same count; no later tensor is larger. x0_25 has a quarter of the
    # channels everywhere.
    widest = 64 * 128 * 64
    assert widest_activation(create_model("osnet_x1_0")) == widest
    assert widest_activation(create_model("osnet_x0_25")) == widest // 4
    assert widest_activation(create_model("osnet_x0_25"), size=(64, 32)) == 16 * 32 * 16
    assert auto_micro_batch(create_model("osnet_x1_0"), budget=8 * widest + 1) == 8
    assert auto_micro_batch(create_model("osnet_x1_0"), budget=1) == 1
    # the default budget grows with the thread count
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            assert auto_micro_batch(create_model("osnet_x0_25"), size=(64, 32)) == \
                MICRO_BATCH_ELEMENTS_PER_THREAD * threads // (16 * 32 * 16)
    finally:
        torch.set_num_threads(before)


def test_micro_batched_fused_equals_whole_batch() -> None:
    torch.manual_seed(0)
    model = create_model("osnet_x0_25").eval()
    x = torch.randn(5, 3, 64, 32).numpy()
    eager = make_runner("eager", model, size=(64, 32))(x)
    whole = make_runner("fused", model, size=(64, 32), micro_batch=None)
    split = make_runner("fused", model, size=(64, 32), micro_batch=2)
    auto = make_runner("fused", model, size=(64, 32))
    assert split.micro_batch == 2 and whole.micro_batch is None
    assert auto.micro_batch == auto_micro_batch(model, (64, 32))
    assert make_runner("eager", model, size=(64, 32)).micro_batch is None
    np.testing.assert_allclose(split(x), whole(x), atol=1e-5)
    np.testing.assert_allclose(split(x), eager, atol=1e-4)


def test_bad_micro_batch_values() -> None:
    model = create_model("osnet_x0_25")
    with pytest.raises(ValueError, match="micro_batch"):
        make_runner("fused", model, micro_batch="big")
    with pytest.raises(ValueError, match="micro_batch"):
        TorchRunner(model, micro_batch=0)


# ---------------------------------------------------------------- streams (ONNX Runtime, OpenVINO)
def test_stream_count_gives_each_thread_a_stream_only_for_large_enough_batches() -> None:
    from omnireid.inference.runtime import MIN_IMAGES_PER_STREAM, stream_count

    assert stream_count(1, 64) == 1  # one thread: nothing to split over
    assert stream_count(2, 2 * MIN_IMAGES_PER_STREAM - 1) == 1
    assert stream_count(2, 2 * MIN_IMAGES_PER_STREAM) == 2
    assert stream_count(4, 64) == 4 and stream_count(4, 4 * MIN_IMAGES_PER_STREAM - 1) == 1
    # by backend: OpenVINO's are streamed, ONNX Runtime's and the PyTorch ones are not
    assert stream_count(2, 64, "openvino-bf16") == 2 and stream_count(2, 64, "onnxruntime") == 1
    assert stream_count(2, 64, "fused") == 1


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_streamed_runner_gives_the_one_stream_embeddings_in_order(backend, tmp_path) -> None:
    torch.manual_seed(0)
    model = create_model("osnet_x0_25").eval()
    size = (64, 32)
    one = make_runner(backend, model, size, num_threads=2, cache_dir=tmp_path)
    two = make_runner(backend, tmp_path / "model.onnx", size, num_threads=2, streams=2)
    assert two.streams == 2
    x = torch.randn(5, 3, *size).numpy()  # an odd batch: parts of 3 and 2 images
    ref = one(x)
    # each image is computed alone in either case; only the threads' blocking differs, so the
    # embeddings agree to float rounding (the same 1e-4 fp32 tolerance as `auto`'s check), and
    # the parts come back in the input's order (a swap would differ by far more)
    np.testing.assert_allclose(two(x), ref, atol=1e-4)
    np.testing.assert_allclose(two(x[:1]), ref[:1], atol=1e-4)  # smaller than the stream count: whole
    assert np.abs(ref[0] - ref[4]).max() > 1e-2
    assert one.streams == 1
    with pytest.raises(UsageError, match="streams must be a positive integer"):
        make_runner(backend, tmp_path / "model.onnx", size, num_threads=2, streams=0)


def test_onnxruntime_spinning_follows_the_environment(tmp_path, monkeypatch) -> None:
    torch.manual_seed(0)
    path = export_onnx(create_model("osnet_x0_25").eval(), tmp_path / "m.onnx", (64, 32))

    def spinning() -> str:
        options = OrtRunner(path, 1).session.get_session_options()
        return options.get_session_config_entry("session.intra_op.allow_spinning")

    monkeypatch.delenv(ORT_SPIN_ENV, raising=False)
    assert spinning() == "1"  # ONNX Runtime's own default, kept
    monkeypatch.setenv(ORT_SPIN_ENV, "0")
    assert spinning() == "0"
    monkeypatch.setenv(ORT_SPIN_ENV, "no")
    with pytest.raises(UsageError, match=ORT_SPIN_ENV):
        OrtRunner(path, 1)


def test_openvino_int8_runs_its_float_operations_in_bf16_only_where_the_cpu_has_it(tmp_path) -> None:
    # make test runs on CPUs with native bf16, make test-isa emulates one without: each run
    # checks its own branch (forcing bf16 where oneDNN is limited to AVX2 crashes OpenVINO, and
    # the runner never asks for it there)
    torch.manual_seed(0)
    run = make_runner("openvino-int8", create_model("osnet_x0_25").eval(), (64, 32),
                      num_threads=1, cache_dir=tmp_path)
    hint = str(run.compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
    assert ("bfloat16" in hint or "bf16" in hint) == cpu_has_bf16(), hint
    out = run(np.random.default_rng(0).standard_normal((2, 3, 64, 32)).astype(np.float32))
    assert out.shape == (2, 512) and np.isfinite(out).all()
