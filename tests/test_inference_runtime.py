"""PyTorch runners: micro-batching splits batches without changing any embedding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from omnireid.inference.runtime import (
    MICRO_BATCH_ELEMENTS_PER_THREAD,
    TorchRunner,
    auto_micro_batch,
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
