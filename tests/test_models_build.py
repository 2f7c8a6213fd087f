"""The OSNet family and baselines: every registered model builds, runs, trains and round-trips."""

from __future__ import annotations

import copy
import types

import pytest
import torch

from omnireid.models import (
    AIN_BLOCKS,
    INPosition,
    OSNet,
    ReIDOutput,
    create_model,
    list_models,
    load_weights,
    make_arch,
    model_complexity,
    save_weights,
)
from omnireid.models.layers import OSBlock

ALL = [n for n in list_models() if n != "osnet"]
FAST = [n for n in ALL if not n.startswith("resnet")]


def _inputs(n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 64, 32, generator=g)


@pytest.mark.parametrize("name", ALL)
def test_forward_train_and_eval_same_record(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=7)
    x = _inputs()
    model.train()
    out = model(x)
    assert isinstance(out, ReIDOutput)
    assert out.embedding.shape == (2, model.feature_dim)
    assert out.logits is not None and out.logits.shape == (2, 7)
    assert torch.isfinite(out.embedding).all() and torch.isfinite(out.logits).all()
    (out.logits.logsumexp(1).mean() + out.embedding.pow(2).mean()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        out_eval = model(x)
    assert isinstance(out_eval, ReIDOutput)
    assert out_eval.embedding.shape == (2, model.feature_dim)
    assert out_eval.logits.shape == (2, 7)


@pytest.mark.parametrize("name", FAST)
def test_no_classifier_gives_embedding_only(name: str) -> None:
    model = create_model(name).eval()
    with torch.no_grad():
        out = model(_inputs(1))
    assert out.logits is None
    assert out.embedding.shape == (1, 512)


@pytest.mark.parametrize("name", ALL)
def test_state_dict_round_trip(name: str, tmp_path) -> None:
    torch.manual_seed(1)
    a = create_model(name, num_classes=5).eval()
    path = save_weights(a, tmp_path / "w.pth")
    torch.manual_seed(2)
    b = create_model(name, num_classes=5).eval()
    load_weights(b, path)
    x = _inputs()
    with torch.no_grad():
        assert torch.equal(a(x).embedding, b(x).embedding)
        assert torch.equal(a(x).logits, b(x).logits)


def test_model_does_not_mutate_input() -> None:
    model = create_model("osnet_ain_x0_25", num_classes=3).train()
    x = _inputs()
    before = x.clone()
    model(x)
    assert torch.equal(x, before)


# Published figures of the OSNet papers (torchreid's compute_model_complexity at 256x128).
PARAMS = {
    "osnet_x1_0": 2_169_508, "osnet_x0_75": 1_285_754, "osnet_x0_5": 630_034,
    "osnet_x0_25": 201_864, "osnet_ibn_x1_0": 2_170_532, "osnet_ain_x1_0": 2_169_508,
}
MULT_ADDS = {
    "osnet_x1_0": 978_878_352, "osnet_x0_75": 571_754_536, "osnet_x0_5": 272_901_064,
    "osnet_x0_25": 82_316_000,
}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_counts_exact(name: str) -> None:
    c = model_complexity(create_model(name, num_classes=751), (256, 128))
    assert c.params_no_classifier == PARAMS[name]
    assert c.params == PARAMS[name] + 751 * 512 + 751


@pytest.mark.parametrize("name", sorted(MULT_ADDS))
def test_mult_adds_exact(name: str) -> None:
    assert model_complexity(create_model(name), (256, 128)).mult_adds == MULT_ADDS[name]


def test_mult_adds_counts_each_conv_once_per_call() -> None:
    # A single conv layer: the count is out_elems * (k*k*cin/groups + bias), checked by hand.
    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = torch.nn.Conv2d(3, 4, 3, padding=1, bias=True)
            self.classifier = None

        def forward(self, x):
            return self.c(x)

    c = model_complexity(Tiny(), (5, 6))
    assert c.mult_adds == 4 * 5 * 6 * (3 * 3 * 3 + 1)


def test_named_models_are_points_of_the_general_builder() -> None:
    for name, kw in {
        "osnet_ain_x0_25": dict(width=0.25, in_positions=AIN_BLOCKS, conv1_in=True),
        "osnet_x0_5": dict(width=0.5),
        "osnet_ibn_x1_0": dict(width=1.0, in_positions=["after", "after"] + ["none"] * 4, conv1_in=True),
    }.items():
        torch.manual_seed(3)
        named = create_model(name).eval()
        torch.manual_seed(3)
        general = create_model("osnet", **kw).eval()
        assert named.arch == general.arch
        x = _inputs()
        with torch.no_grad():
            assert torch.equal(named(x).embedding, general(x).embedding)


def test_in_positions_place_layers_where_asked() -> None:
    model = create_model("osnet", width=0.25, in_positions=["none", "inside", "after", "both", "none", "none"])
    b = [blk for stage in (model.conv2, model.conv3, model.conv4) for blk in stage]
    assert b[0].in_inside is None and b[0].in_after is None and b[0].conv3.bn is not None
    assert b[1].in_inside is not None and b[1].in_after is None and b[1].conv3.bn is None
    assert b[2].in_inside is None and b[2].in_after is not None and b[2].conv3.bn is not None
    assert b[3].in_inside is not None and b[3].in_after is not None
    assert isinstance(model.conv1.bn, torch.nn.BatchNorm2d)
    ain = create_model("osnet_ain_x0_25")
    assert isinstance(ain.conv1.bn, torch.nn.InstanceNorm2d)


def test_in_after_normalises_each_sample_independently() -> None:
    # IN after the addition makes every channel zero-mean per sample before the ReLU.
    block = create_model("osnet", width=0.25, in_positions=["after"] + ["none"] * 5).conv2[0].eval()
    pre = {}

    def keep(_m, _i, out) -> None:  # must return None, or the hook would replace the output
        pre["o"] = out.clone()

    block.in_after.register_forward_hook(keep)
    block(torch.randn(1, 16, 8, 4))
    assert pre["o"].mean(dim=(2, 3)).abs().max() < 1e-4


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(KeyError, match="osnet_ain_x1_0"):
        create_model("osnet_ain_x10")


def test_arch_spec_round_trip(tmp_path) -> None:
    arch = make_arch(0.5, [INPosition.BOTH, "inside", "none", "after", "none", "inside"], conv1_in=True)
    path = tmp_path / "spec.json"
    arch.save(path)
    model = create_model("osnet", arch=str(path))
    assert isinstance(model, OSNet) and model.arch == arch
    bad = tmp_path / "bad.json"
    bad.write_text('{"blocks": ["none"], "width": 1.0}')
    with pytest.raises(ValueError, match="bad.json"):
        create_model("osnet", arch=str(bad))


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("position", [INPosition.NONE, INPosition.INSIDE, INPosition.AFTER])
def test_training_gate_batched_equals_per_stream_gate(position: INPosition, channels_last: bool) -> None:
    """In training an OSBlock evaluates its shared gate once for all streams (stacked matrix
    products); that must be the very function the per-stream gate module computes, gradients
    included. Both are computed here in float64, so only summation order separates them."""
    torch.manual_seed(0)
    block = OSBlock(32, 64, position).double().train()
    for m in block.modules():  # non-trivial gate biases and norm parameters
        if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d)) and m.bias is not None:
            torch.nn.init.uniform_(m.bias, -0.5, 0.5)
    x = torch.randn(3, 32, 8, 4, dtype=torch.float64)
    g = torch.randn(3, 64, 8, 4, dtype=torch.float64)
    if channels_last:
        block = block.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)

    def per_stream(b: OSBlock, x1: torch.Tensor) -> torch.Tensor:
        out = b.gate(b.streams[0](x1))
        for stream in b.streams[1:]:
            out = out + b.gate(stream(x1))
        return out

    results = []
    for aggregate in (None, per_stream):
        b = block if aggregate is None else _with_aggregate(block, aggregate)
        b.zero_grad()
        x.grad = None
        out = b(x)
        (out * g).sum().backward()
        results.append([out.detach(), x.grad.clone()] + [p.grad.clone() for p in b.parameters()])
    batched, reference = results
    assert len(batched) == len(reference)
    assert batched[1].is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    for a, r in zip(batched, reference):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)


def _with_aggregate(block, aggregate):
    """A deep copy of ``block`` whose aggregate is ``aggregate`` (same parameters' values)."""
    b = copy.deepcopy(block)
    b.aggregate = types.MethodType(aggregate, b)
    return b
