"""The search supernet: Gumbel-softmax mixture, temperature schedule, gradients, derivation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from omnireid.models import AIN_BLOCKS, INPosition, OSBlock, OSNetArch, create_model
from omnireid.models.supernet import (
    NAS_CANDIDATES,
    MixedOSBlock,
    build_supernet,
    candidate_probabilities,
    gumbel_softmax_weights,
    temperature_at,
)
from tests.conftest import require_file

X = (2, 3, 64, 32)


@pytest.fixture(scope="module")
def supernet() -> nn.Module:
    torch.manual_seed(0)
    return build_supernet(num_classes=5, width=0.25)


# ---------------------------------------------------------------- temperature schedule
@pytest.mark.parametrize("epoch,expected", [
    (0, 10.0), (19, 10.0), (20, 5.0), (39, 5.0), (40, 2.5), (60, 1.25), (79, 1.25), (80, 1.0),
    (500, 1.0),
])
def test_temperature_schedule_paper_defaults(epoch: int, expected: float) -> None:
    # 10 halved every 20 epochs with a floor of 1: 10, 5, 2.5, 1.25, then 0.625 -> 1
    assert temperature_at(epoch) == expected


def test_temperature_schedule_options() -> None:
    assert [temperature_at(e, 8, 1, 0.5, 0.5) for e in range(6)] == [8, 4, 2, 1, 0.5, 0.5]
    assert temperature_at(100, 3.0, decay_every=0) == 3.0
    with pytest.raises(ValueError):
        temperature_at(-1)


# ---------------------------------------------------------------- Gumbel-softmax weights
@pytest.mark.parametrize("temperature", [10.0, 1.0, 0.1])
def test_mixture_weights_are_a_distribution(temperature: float) -> None:
    g = torch.Generator().manual_seed(0)
    alpha = torch.tensor([1.0, 0.5, -0.3, 0.0])  # non-positive entries exercise the log-0 guard
    for _ in range(50):
        w = gumbel_softmax_weights(alpha, temperature, generator=g)
        assert torch.isfinite(w).all() and (w >= 0).all()
        assert w.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_noise_free_weights_match_closed_form() -> None:
    # softmax(log(relu(a)) / T) == relu(a)**(1/T) / sum(relu(a)**(1/T))
    alpha = torch.tensor([2.0, 1.0, 0.5, 0.25])
    for t in (10.0, 2.0, 1.0):
        expected = alpha.clamp(min=0) ** (1 / t)
        expected = expected / expected.sum()
        got = gumbel_softmax_weights(alpha, t, noise=False)
        assert torch.allclose(got, expected, atol=1e-6)
    # T = 1: the candidate probabilities are relu(alpha) normalised
    assert torch.allclose(candidate_probabilities(alpha), alpha / alpha.sum(), atol=1e-6)


def test_non_positive_alphas_get_probability_zero_and_all_non_positive_is_uniform() -> None:
    p = candidate_probabilities(torch.tensor([1.0, 3.0, 0.0, -2.0]))
    assert torch.allclose(p, torch.tensor([0.25, 0.75, 0.0, 0.0]), atol=1e-6)
    p = candidate_probabilities(torch.tensor([0.0, -1.0, -5.0, 0.0]))
    assert torch.allclose(p, torch.full((4,), 0.25))


def test_gumbel_sample_matches_hand_computation() -> None:
    alpha = torch.tensor([1.5, 0.5, 1.0, 2.0])
    t = 2.0
    u = torch.rand(4, generator=torch.Generator().manual_seed(3))
    gumbel = -np.log(-np.log(u.numpy().astype(np.float64)))
    scores = (np.log(alpha.numpy()) + gumbel) / t
    expected = np.exp(scores - scores.max())
    expected /= expected.sum()
    got = gumbel_softmax_weights(alpha, t, generator=torch.Generator().manual_seed(3))
    assert np.allclose(got.numpy(), expected, atol=1e-5)


def test_sampling_frequencies_follow_relu_alpha() -> None:
    # argmax of log(p) + Gumbel is a sample of Categorical(p) (the Gumbel-max trick)
    alpha = torch.tensor([0.1, 0.2, 0.3, 0.4])
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(4)
    for _ in range(4000):
        counts[gumbel_softmax_weights(alpha, 1.0, generator=g).argmax()] += 1
    assert torch.allclose(counts / 4000, alpha, atol=0.03)


def test_hard_weights_are_one_hot_with_soft_gradients() -> None:
    alpha = torch.tensor([1.0, 2.0, 0.5, 1.0], requires_grad=True)
    w = gumbel_softmax_weights(alpha, 1.0, hard=True, generator=torch.Generator().manual_seed(1))
    assert sorted(w.detach().tolist()) == [0.0, 0.0, 0.0, 1.0]
    (w * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0


def test_temperature_must_be_positive() -> None:
    with pytest.raises(ValueError):
        gumbel_softmax_weights(torch.ones(4), 0.0)


# ---------------------------------------------------------------- mixed block
def _block(mode: str = "mixture") -> MixedOSBlock:
    torch.manual_seed(0)
    return MixedOSBlock(16, 64, mode=mode)


def test_mixed_block_holds_four_separate_os_blocks() -> None:
    b = _block()
    assert [c.in_position for c in b.candidates] == list(NAS_CANDIDATES)
    assert all(type(c) is OSBlock for c in b.candidates)
    ids = {id(p) for c in b.candidates for p in c.parameters()}
    assert len(ids) == sum(1 for c in b.candidates for _ in c.parameters())  # no sharing
    assert b.alpha.shape == (4,) and torch.equal(b.alpha.detach(), torch.ones(4))


def test_mixed_block_train_output_is_the_weighted_sum() -> None:
    b = _block().train()
    b.alpha.data = torch.tensor([1.0, 2.0, 0.5, 1.5])
    b.temperature = 2.0
    x = torch.randn(2, 16, 8, 4)
    torch.manual_seed(7)
    out = b(x)
    torch.manual_seed(7)
    u = torch.rand(4)  # the same noise the block drew first
    g = -torch.log(-torch.log(u))
    w = (b.alpha.detach() * torch.exp(g)) ** (1 / 2.0)
    w = w / w.sum()
    expected = sum(wi * c(x) for wi, c in zip(w, b.candidates))
    assert torch.allclose(out, expected, atol=1e-5)


def test_mixed_block_eval_is_deterministic() -> None:
    b = _block().eval()
    b.alpha.data = torch.tensor([0.2, 3.0, 0.1, 0.1])
    b.temperature = 1.0
    x = torch.randn(2, 16, 8, 4)
    with torch.no_grad():
        assert torch.equal(b(x), b(x))
        w = b.alpha / b.alpha.sum()
        expected = sum(wi * c(x) for wi, c in zip(w, b.candidates))
        assert torch.allclose(b(x), expected, atol=1e-5)


def test_single_path_runs_one_candidate_and_alpha_still_learns() -> None:
    b = _block("single_path").train()
    calls = []
    for i, c in enumerate(b.candidates):
        c.register_forward_hook(lambda m, inp, out, i=i: calls.append(i))
    x = torch.randn(2, 16, 8, 4)
    out = b(x)
    assert len(calls) == 1
    out.pow(2).mean().backward()
    assert b.alpha.grad is not None and b.alpha.grad.abs().sum() > 0
    # untouched candidates get no gradient
    for i, c in enumerate(b.candidates):
        grads = [p.grad for p in c.parameters()]
        assert all(g is None for g in grads) == (i != calls[0])


def test_two_path_runs_two_candidates_with_renormalised_weights() -> None:
    b = _block("two_path").train()
    calls = []
    for i, c in enumerate(b.candidates):
        c.register_forward_hook(lambda m, inp, out, i=i: calls.append(i))
    w = b.weights()
    assert int((w != 0).sum()) == 2 and w.sum().item() == pytest.approx(1.0, abs=1e-6)
    out = b(torch.randn(2, 16, 8, 4))
    assert len(calls) == 2 and len(set(calls)) == 2
    out.pow(2).mean().backward()
    assert b.alpha.grad is not None and b.alpha.grad.abs().sum() > 0


def test_shared_weights_candidates_differ_only_in_instance_norm() -> None:
    torch.manual_seed(0)
    shared = MixedOSBlock(16, 64, share_weights=True)
    separate = MixedOSBlock(16, 64)
    c = shared.candidates
    assert all(x.conv1 is c[0].conv1 and x.streams is c[0].streams and x.gate is c[0].gate
               and x.conv3.conv is c[0].conv3.conv and x.downsample is c[0].downsample for x in c)
    assert c[0].conv3.bn is c[2].conv3.bn and c[1].conv3.bn is None
    n_shared = sum(p.numel() for p in shared.parameters())
    n_block = sum(p.numel() for p in OSBlock(16, 64).parameters())
    assert n_shared < 1.1 * n_block < sum(p.numel() for p in separate.parameters())
    x = torch.randn(2, 16, 8, 4)
    shared.eval()
    with torch.no_grad():
        # same convolutions, different placement: outputs differ
        assert not torch.allclose(c[0](x), c[1](x))


def test_single_path_value_is_the_chosen_candidate() -> None:
    b = _block("single_path").eval()
    b.alpha.data = torch.tensor([0.1, 0.2, 5.0, 0.3])
    x = torch.randn(2, 16, 8, 4)
    with torch.no_grad():
        assert torch.allclose(b(x), b.candidates[2](x))


# ---------------------------------------------------------------- supernet
def test_supernet_norms_are_non_affine_and_stem_uses_in(supernet) -> None:
    norms = [m for m in supernet.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    assert norms and all(not m.affine and m.weight is None for m in norms)
    assert isinstance(supernet.conv1.bn, nn.InstanceNorm2d)
    assert len(supernet.mixed_blocks()) == 6
    assert [n for n, _ in supernet.mixed_blocks()] == [
        "conv2-1", "conv2-2", "conv3-1", "conv3-2", "conv4-1", "conv4-2"]


def _alpha_grads(mode: str, share: bool = False) -> torch.Tensor:
    torch.manual_seed(0)
    net = build_supernet(num_classes=4, width=0.25, mode=mode, share_weights=share).train()
    net.set_temperature(1.0)
    x, y = torch.randn(4, 3, 64, 32), torch.tensor([0, 1, 2, 3])
    total = torch.zeros(6)
    for _ in range(2):
        net.zero_grad()
        out = net(x)
        assert out.embedding.shape == (4, 512) and out.logits.shape == (4, 4)
        nn.functional.cross_entropy(out.logits, y).backward()
        for i, (name, block) in enumerate(net.mixed_blocks()):
            assert block.alpha.grad is not None and torch.isfinite(block.alpha.grad).all(), name
            total[i] += block.alpha.grad.abs().sum()
    return total


@pytest.mark.parametrize("mode,share", [("mixture", False), ("two_path", False), ("two_path", True)])
def test_gradients_reach_every_alpha(mode: str, share: bool) -> None:
    grads = _alpha_grads(mode, share)
    assert (grads > 1e-3).all(), grads


def test_single_path_alpha_gradient_vanishes_before_batch_norm() -> None:
    # The documented limitation of the straight-through single-path estimator: it only sees the
    # scale of a block's output, which the batch-normalised 1x1 conv after conv2-2, conv3-2 and
    # conv4-2 removes. The first block of each stage feeds the next block's identity path.
    grads = _alpha_grads("single_path")
    assert (grads[[0, 2, 4]] > 1e-3).all(), grads
    assert (grads[[1, 3, 5]] < 1e-4).all(), grads


def test_alpha_is_trained_by_the_same_optimiser() -> None:
    torch.manual_seed(0)
    net = build_supernet(num_classes=4, width=0.25)
    params = list(net.parameters())
    assert all(any(a is p for p in params) for a in net.arch_parameters())
    assert len(net.weight_parameters()) + 6 == len(params)
    opt = torch.optim.Adam(params, lr=0.01)
    before = net.alphas()
    nn.functional.cross_entropy(net(torch.randn(*X)).logits, torch.tensor([1, 2])).backward()
    opt.step()
    assert not torch.equal(before, net.alphas())


def test_set_temperature_and_mode(supernet) -> None:
    supernet.set_temperature(2.5)
    assert all(b.temperature == 2.5 for _, b in supernet.mixed_blocks())
    supernet.set_mode("single_path")
    assert all(b.mode == "single_path" for _, b in supernet.mixed_blocks())
    supernet.set_mode("mixture")
    with pytest.raises(ValueError):
        supernet.set_mode("both")
    with pytest.raises(ValueError):
        supernet.set_temperature(0)


# ---------------------------------------------------------------- derivation
def _set_choice(net, positions) -> None:
    for (_, block), pos in zip(net.mixed_blocks(), positions):
        alpha = torch.full((4,), 0.5)
        alpha[list(NAS_CANDIDATES).index(INPosition(pos))] = 1.2
        block.alpha.data = alpha


def test_derive_takes_argmax_per_block(supernet) -> None:
    choice = ["both", "none", "after", "inside", "none", "after"]
    _set_choice(supernet, choice)
    arch = supernet.derive()
    assert [b.value for b in arch.blocks] == choice
    assert arch.conv1_in and arch.channels == (16, 64, 96, 128) and arch.feature_dim == 512
    assert arch.table().splitlines()[2].split() == ["conv2-1", "both"]
    assert supernet.derive(width=1.0).channels == (64, 256, 384, 512)


def test_spec_round_trip(tmp_path, supernet) -> None:
    _set_choice(supernet, ["inside", "after", "both", "none", "inside", "after"])
    arch = supernet.derive(width=0.5)
    path = tmp_path / "arch.json"
    arch.save(path)
    assert OSNetArch.load(path) == arch
    assert OSNetArch.from_dict(json.loads(path.read_text())) == arch
    model = create_model("osnet", arch=path)
    assert model.arch == arch
    assert create_model("osnet", arch=path, width=0.25).arch == arch.with_width(0.25)


def test_searched_ain_spec_is_exactly_osnet_ain_x1_0(tmp_path, supernet) -> None:
    _set_choice(supernet, AIN_BLOCKS)
    path = tmp_path / "child.json"
    supernet.derive().save(path)  # searched at x0_25, built at x1_0 below
    torch.manual_seed(123)
    child = create_model("osnet", arch=path, width=1.0, num_classes=10).eval()
    torch.manual_seed(123)
    ain = create_model("osnet_ain_x1_0", num_classes=10).eval()
    a, b = child.state_dict(), ain.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ya, yb = child(x), ain(x)
    assert torch.equal(ya.embedding, yb.embedding) and torch.equal(ya.logits, yb.logits)


def test_searched_ain_child_loads_torchreid_osnet_ain_weights(compat_dir, supernet) -> None:
    """The derived AIN child reproduces torchreid's osnet_ain_x0_25 features."""
    import csv

    from omnireid.inference import FeatureExtractor

    root = compat_dir / "cuhk03_pair1_val"
    with open(require_file(root / "manifest.csv")) as fh:
        paths = [root / r["path"] for r in csv.DictReader(fh)][:16]
    stem = "osnet_ain_x0_25_random_calibrated"
    weights = require_file(compat_dir / "weights" / f"{stem}.pth")
    ref = np.load(require_file(compat_dir / "weights" / f"{stem}_features_first64.npy"))[:16]
    _set_choice(supernet, AIN_BLOCKS)
    child = create_model("osnet", arch=supernet.derive(), width=0.25, weights=weights)
    feats = FeatureExtractor(child, backend="eager", normalize=False)(paths)
    assert np.abs(feats - ref).max() <= 1e-4
    assert not math.isnan(float(feats.sum()))
