"""The worker pool of the commands that train models side by side."""

from __future__ import annotations

import os
import time

import pytest

from omnireid.engine.workers import training_pool


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_results_come_back_from_spawned_workers() -> None:
    with training_pool(2) as pool:
        pids = {pool.submit(os.getpid).result() for _ in range(3)}
        assert os.getpid() not in pids
        assert pool.submit(abs, -3).result() == 3


def test_an_error_in_the_block_stops_a_busy_worker_at_once() -> None:
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="stop here"):
        with training_pool(1) as pool:
            pid = pool.submit(os.getpid).result()
            busy = pool.submit(time.sleep, 300)
            while not busy.running():
                time.sleep(0.05)
            raise RuntimeError("stop here")
    # waiting for the worker instead of stopping it would take the 300 s of its sleep
    assert time.monotonic() - start < 120
    deadline = time.monotonic() + 30
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(pid), f"worker {pid} still runs after the error"
