"""Optimisers, learning-rate schedules (against hand-computed values) and fixbase."""

from __future__ import annotations

import pytest
import torch

from omnireid.engine.optim import EpochLR, build_optimizer, lr_factor, set_trainable
from omnireid.models import create_model

APPROX = dict(rel=1e-9, abs=1e-12)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_single_step() -> None:
    got = [lr_factor(e, "single_step", 10, stepsize=[3], gamma=0.1) for e in range(10)]
    assert got == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001], **APPROX)


def test_multi_step_paper_from_scratch() -> None:
    f = {e: lr_factor(e, "multi_step", 350, stepsize=[150, 225, 300], gamma=0.1) for e in (0, 149, 150, 224, 225, 299, 300, 349)}
    assert [f[e] for e in sorted(f)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001], **APPROX)


def test_cosine() -> None:
    # (1 + cos(pi * t / 4)) / 2 for t = 0..3: 1, (1 + 0.70710678)/2, 0.5, (1 - 0.70710678)/2
    got = [lr_factor(e, "cosine", 4) for e in range(4)]
    assert got == pytest.approx([1.0, 0.8535533906, 0.5, 0.1464466094], rel=1e-9)


def test_linear_warmup_then_cosine() -> None:
    got = [lr_factor(e, "cosine", 6, warmup_epochs=2, warmup_factor=0.1) for e in range(6)]
    assert got == pytest.approx([0.1, 0.55, 1.0, 0.8535533906, 0.5, 0.1464466094], rel=1e-9)


def test_warmup_then_step_and_constant() -> None:
    got = [lr_factor(e, "single_step", 8, stepsize=[4], warmup_epochs=4, warmup_factor=0.2) for e in range(6)]
    assert got == pytest.approx([0.2, 0.4, 0.6, 0.8, 0.1, 0.1], rel=1e-9)
    assert lr_factor(5, "constant", 10) == 1.0


def test_epoch_lr_sets_group_rates_with_new_layer_multiplier() -> None:
    model = create_model("osnet_x0_25", num_classes=5)
    opt = build_optimizer(model, "sgd", 0.065, new_layers=["classifier"], new_layers_lr_mult=10)
    sched = EpochLR(opt, "multi_step", 350, stepsize=[150, 225, 300], gamma=0.1)
    assert sched.step(0) == pytest.approx([0.065, 0.65])
    assert sched.step(230) == pytest.approx([0.00065, 0.0065])
    assert len(opt.param_groups[1]["params"]) == 2  # classifier weight and bias


def test_optimizer_kinds() -> None:
    model = create_model("osnet_x0_25", num_classes=5)
    adam = build_optimizer(model, "amsgrad", 0.0015, weight_decay=5e-4)
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["amsgrad"] and adam.defaults["weight_decay"] == 5e-4
    assert not build_optimizer(model, "adam", 0.1).defaults["amsgrad"]
    sgd = build_optimizer(model, "sgd", 0.065, momentum=0.9, nesterov=True)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9
    rms = build_optimizer(model, "rmsprop", 0.01, rmsprop_alpha=0.9)
    assert isinstance(rms, torch.optim.RMSprop) and rms.defaults["alpha"] == 0.9
    with pytest.raises(ValueError, match="no layer 'clasifier'.*Did you mean 'classifier'"):
        build_optimizer(model, "sgd", 0.1, new_layers=["clasifier"])


def _step(model, opt) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 64, 32, generator=g)
    y = torch.tensor([0, 1, 2, 3])
    opt.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x).logits, y).backward()
    opt.step()


def test_fixbase_trains_exactly_the_open_layers() -> None:
    torch.manual_seed(0)
    model = create_model("osnet_x0_25", num_classes=4)
    opt = build_optimizer(model, "amsgrad", 0.01, weight_decay=5e-4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = set_trainable(model, ["classifier"])
    assert trainable == ["classifier.weight", "classifier.bias"]
    _step(model, opt)
    after = model.state_dict()
    for name, p in model.named_parameters():
        if name.startswith("classifier."):
            assert p.grad is not None and not torch.equal(after[name], before[name]), name
        else:
            assert p.grad is None, name
            assert torch.equal(after[name], before[name]), name
    # frozen BatchNorm layers keep their running statistics (eval mode)
    for name in before:
        if "running_" in name or "num_batches_tracked" in name:
            assert torch.equal(after[name], before[name]), name
    # opening everything again trains every layer
    set_trainable(model, None)
    _step(model, opt)
    assert all(p.grad is not None for p in model.parameters())
    changed = [k for k, _ in model.named_parameters() if not torch.equal(model.state_dict()[k], before[k])]
    assert "conv1.conv.weight" in changed and "fc.0.weight" in changed


def _one_batch_loader():
    from omnireid.data.loaders import Batch

    g = torch.Generator().manual_seed(3)
    images = torch.randn(8, 3, 64, 32, generator=g)
    pids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    zeros = torch.zeros(8, dtype=torch.int64)
    return [Batch(images, pids, zeros, zeros.clone(), [f"{i}.jpg" for i in range(8)])]


def test_grad_clip_bounds_the_update_and_bf16_channels_last_step() -> None:
    from omnireid.engine.train import train_one_epoch
    from omnireid.losses import build_loss

    torch.manual_seed(0)
    model = create_model("osnet_x0_25", num_classes=4).to(memory_format=torch.channels_last)
    before = [p.detach().clone() for p in model.parameters()]
    opt = build_optimizer(model, "sgd", 1.0, momentum=0.0, weight_decay=0.0)
    stats = train_one_epoch(model, _one_batch_loader(), build_loss({"softmax": 1.0}), opt,
                            device=torch.device("cpu"), epoch=0, amp="bf16", channels_last=True,
                            grad_clip=1e-3, progress=False)
    delta = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    # plain SGD with lr 1: the update is the clipped gradient, whose norm is at most 1e-3
    assert 0 < delta.item() <= 1e-3 * (1 + 1e-4)
    assert stats.steps == 1 and stats.images == 8 and 0 < stats.loss < 10


@pytest.mark.parametrize("name", ["amsgrad", "sgd"])
def test_fused_step_by_default_same_updates_as_the_loop(name: str) -> None:
    torch.manual_seed(0)
    models = [create_model("osnet_x0_25", num_classes=4) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    start = {n: p.detach().clone() for n, p in models[0].named_parameters()}
    fused = build_optimizer(models[0], name, 0.01)
    loop = build_optimizer(models[1], name, 0.01, fused=False)
    assert fused.defaults["fused"] and not loop.defaults["fused"]
    # one step: one kernel or a loop of kernels, the same arithmetic up to float rounding. (Over
    # several steps Adam amplifies rounding: where a gradient is ~0, m / sqrt(v) is +-1 either
    # way, so the two runs drift apart by lr-sized steps in a few weights.)
    _step(models[0], fused)
    _step(models[1], loop)
    for (n, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=n)
    moved = max(float((p.detach() - start[n]).abs().max()) for n, p in models[0].named_parameters())
    assert moved > 1e-3  # the steps did change the weights
