"""benchmarks/bench_train.py: the order of the runs within its rounds is balanced."""

from __future__ import annotations

from collections import Counter

import pytest

from tests._scripts import load_script


@pytest.fixture(scope="module")
def bench_train():
    return load_script("benchmarks/bench_train.py")


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_every_run_takes_every_position_equally_often(bench_train, n):
    runs = [f"run{i}" for i in range(n)]
    orders = [bench_train.balanced_order(runs, r) for r in range(2 * n)]
    assert all(sorted(o) == runs for o in orders)
    positions = Counter((run, i) for o in orders for i, run in enumerate(o))
    assert len(positions) == n * n and set(positions.values()) == {2}, positions


@pytest.mark.parametrize("n", [2, 3])
def test_with_up_to_three_runs_each_follows_every_other_equally_often(bench_train, n):
    runs = [f"run{i}" for i in range(n)]
    orders = [bench_train.balanced_order(runs, r) for r in range(2 * n)]
    follows = Counter((a, b) for o in orders for a, b in zip(o, o[1:]))
    assert len(follows) == n * (n - 1) and len(set(follows.values())) == 1, follows
