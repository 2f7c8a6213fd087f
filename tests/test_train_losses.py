"""Losses against hand computation and a brute-force reference."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from omnireid.losses import LOSSES, BatchHardTripletLoss, CrossEntropyLabelSmooth, build_loss
from omnireid.models.output import ReIDOutput


def test_label_smoothing_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    targets = torch.tensor([0, 1])
    eps = 0.1
    expected = 0.0
    for row, t in zip(logits.tolist(), targets.tolist()):
        z = sum(math.exp(v) for v in row)
        logp = [v - math.log(z) for v in row]
        q = [eps / 3 + (1 - eps) * (i == t) for i in range(3)]
        expected += -sum(qi * lp for qi, lp in zip(q, logp))
    expected /= 2
    got = CrossEntropyLabelSmooth(0.1)(logits, targets)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_no_smoothing_is_cross_entropy() -> None:
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(6, 5, generator=g), torch.randint(0, 5, (6,), generator=g)
    assert CrossEntropyLabelSmooth(0.0)(logits, targets).item() == pytest.approx(F.cross_entropy(logits, targets).item(), rel=1e-6)


def _triplet_brute(x: torch.Tensor, y: torch.Tensor, margin: float) -> float:
    n = len(y)
    d = [[math.dist(x[i].tolist(), x[j].tolist()) for j in range(n)] for i in range(n)]
    total = 0.0
    for a in range(n):
        hardest_pos = max(d[a][p] for p in range(n) if y[p] == y[a])
        hardest_neg = min(d[a][q] for q in range(n) if y[q] != y[a])
        total += max(0.0, hardest_pos - hardest_neg + margin)
    return total / n


def test_batch_hard_triplet_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 4, generator=g)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    assert BatchHardTripletLoss(0.3)(x, y).item() == pytest.approx(_triplet_brute(x, y, 0.3), rel=1e-5)


def test_triplet_zero_when_well_separated() -> None:
    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [10.1, 0.0]])
    y = torch.tensor([0, 0, 1, 1])
    assert BatchHardTripletLoss(0.3)(x, y).item() == 0.0


def test_weighted_sum_and_registry() -> None:
    g = torch.Generator().manual_seed(2)
    out = ReIDOutput(torch.randn(8, 4, generator=g), torch.randn(8, 5, generator=g))
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    crit = build_loss({"softmax": 1.0, "triplet": 0.5}, label_smooth=0.1, margin=0.3)
    res = crit(out, y)
    ce = CrossEntropyLabelSmooth(0.1)(out.logits, y)
    tri = BatchHardTripletLoss(0.3)(out.embedding, y)
    assert res.total.item() == pytest.approx((ce + 0.5 * tri).item(), rel=1e-6)
    assert set(res.parts) == {"softmax", "triplet"}
    assert set(itertools.islice(LOSSES, 5)) >= {"softmax", "triplet"}
    with pytest.raises(KeyError, match="Did you mean 'triplet'"):
        build_loss({"triplett": 1.0})
    with pytest.raises(ValueError, match="did not return"):
        build_loss({"softmax": 1.0})(ReIDOutput(out.embedding, None), y)
