"""Inference rewrites: BatchNorm folding and OSNet's merged streams give the same embeddings."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from omnireid.inference.fuse import (
    FusedOSBlock,
    fold_batchnorm,
    fold_conv_bn,
    fold_linear_bn,
    optimize_for_inference,
)
from omnireid.models import OSBlock, create_model

# numerics of the fast paths depend on the instruction set: also run with AVX2 forced (make test-isa)
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.isa]


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters (fresh ones are the identity)."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)
        elif isinstance(m, nn.InstanceNorm2d) and m.affine:
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def test_fold_conv_bn_matches_by_hand() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=True)
    bn = randomize_norms(nn.BatchNorm2d(6))
    x = torch.randn(2, 4, 5, 5)
    # by hand: (conv(x) - mean) / sqrt(var + eps) * gamma + beta
    y = conv(x)
    expected = ((y - bn.running_mean.view(1, -1, 1, 1))
                / torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps)
                * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1))
    torch.testing.assert_close(fold_conv_bn(conv, bn)(x), expected, atol=1e-5, rtol=1e-5)
    lin, bn1 = nn.Linear(5, 3), randomize_norms(nn.BatchNorm1d(3))
    v = torch.randn(4, 5)
    torch.testing.assert_close(fold_linear_bn(lin, bn1)(v), bn1(lin(v)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["osnet_x0_25", "osnet_ain_x0_25", "osnet_ibn_x1_0"])
def test_optimized_model_equals_original(name: str) -> None:
    torch.manual_seed(0)
    model = randomize_norms(create_model(name, num_classes=7))
    x = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        ref = model(x).embedding
        folded = fold_batchnorm(copy.deepcopy(model))
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(folded(x).embedding, ref, atol=1e-4, rtol=1e-4)
        for channels_last in (False, True):
            fast = optimize_for_inference(model, merge_streams=True, channels_last=channels_last)
            assert any(isinstance(m, FusedOSBlock) for m in fast.modules())
            assert not any(isinstance(m, OSBlock) for m in fast.modules())
            xi = x.contiguous(memory_format=torch.channels_last) if channels_last else x
            plain = optimize_for_inference(model, channels_last=channels_last)
            assert (plain(xi).embedding - ref).abs().max().item() < 1e-4
            out = fast(xi)
            assert out.logits is None
            assert (out.embedding - ref).abs().max().item() < 1e-4
    # the original is untouched
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model.classifier is not None


def test_merged_block_structure_and_equality() -> None:
    torch.manual_seed(1)
    block = randomize_norms(OSBlock(64, 128))  # with a downsample projection
    x = torch.randn(2, 64, 8, 4)
    with torch.no_grad():
        ref = block(x)
        fused = FusedOSBlock(fold_batchnorm(block))
    mid = 128 // 4
    # conv1 + downsample as one 1x1 conv, all four first stream convs as one mid -> 4*mid conv
    assert fused.entry.out_channels == mid + 128
    assert fused.pw0.out_channels == 4 * mid and fused.pw0.groups == 1
    assert fused.dw0.groups == 4 * mid
    assert [len(s) for s in fused.rest] == [0, 1, 2, 3]
    with torch.no_grad():
        torch.testing.assert_close(fused(x), ref, atol=1e-5, rtol=1e-5)


def test_merged_block_refuses_unfolded_batchnorm() -> None:
    with pytest.raises(ValueError, match="fold_batchnorm"):
        FusedOSBlock(OSBlock(64, 64))
