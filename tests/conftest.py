"""Shared fixtures. Real-material tests read OMNIREID_COMPAT_DIR (set by .ci/run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    """Every test that reads the real material is also an ``isa`` test: its numbers come from
    convolutions and matrix products whose rounding depends on the CPU's instruction set, so CI
    runs it a second time with a lower one forced (``make test-isa``)."""
    for item in items:
        if "compat_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.isa)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    tiny CPU inputs run fastest, and most predictably on a busy machine, on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def compat_dir() -> Path:
    """The folder of real compatibility material; fails (never skips) where CI expects it."""
    value = os.environ.get("OMNIREID_COMPAT_DIR")
    if not value:
        if os.environ.get("OMNIREID_REQUIRE_COMPAT") == "1":
            pytest.fail("OMNIREID_REQUIRE_COMPAT=1 but OMNIREID_COMPAT_DIR is not set")
        pytest.skip("OMNIREID_COMPAT_DIR not set (real-material tests run in CI)")
    path = Path(value)
    if not (path / "README.md").is_file():
        pytest.fail(f"OMNIREID_COMPAT_DIR={value} does not hold the compatibility material")
    return path


def require_file(path: Path) -> Path:
    """Return ``path``, failing the test loudly if it does not exist."""
    if not path.is_file():
        pytest.fail(f"compatibility file missing: {path}")
    return path
