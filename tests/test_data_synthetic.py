"""The synthetic benchmark: deterministic, Market-1501 layout, cached, valid protocol."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omnireid.data import load_dataset
from omnireid.data.synthetic import DOMAIN_STYLES, SyntheticSpec, default_cache_dir, generate_domain

TINY = dict(num_ids=8, num_cameras=3, cameras_per_id=(2, 3), images_per_camera=(1, 2),
            num_distractors=2, num_junk=1, height=32, width=16)


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.jpg"))}


def test_generation_is_deterministic_and_seed_dependent(tmp_path):
    spec = SyntheticSpec(domain="b", seed=3, **TINY)
    a = generate_domain(spec, tmp_path / "one", progress=False)
    b = generate_domain(spec, tmp_path / "two", progress=False)
    da, db = digest(a), digest(b)
    assert da and da == db
    c = generate_domain(SyntheticSpec(domain="b", seed=4, **TINY), tmp_path / "one", progress=False)
    assert digest(c) != da
    other_domain = generate_domain(SyntheticSpec(domain="c", seed=3, **TINY), tmp_path / "one", progress=False)
    assert digest(other_domain) != da


def test_synthetic_reads_as_market_with_a_valid_protocol(tmp_path):
    ds = load_dataset("synthetic_a", tmp_path, **TINY)
    assert ds.name == "synthetic_a"
    meta = json.loads((Path(ds.extra["synthetic_root"]) / "synthetic.json").read_text())
    counts = meta["counts"]
    assert len(ds.train) == counts["train"] and len(ds.query) == counts["query"]
    assert len(ds.gallery) == counts["gallery"] + counts["distractor"]
    assert ds.extra["junk_dropped"] == counts["junk"] == 1
    assert ds.num_train_pids == 4 and sorted({s.pid for s in ds.train}) == [0, 1, 2, 3]
    test_ids = {s.pid for s in ds.query}
    assert test_ids.isdisjoint({int(Path(s.path).name[:4]) for s in ds.train})
    assert Counter(s.pid for s in ds.gallery)[0] == 2  # distractors
    # every query has a match in the gallery from another camera (Market-1501 protocol)
    for q in ds.query:
        assert any(g.pid == q.pid and g.camid != q.camid for g in ds.gallery), q.path
    # one query per (id, camera)
    assert len({(q.pid, q.camid) for q in ds.query}) == len(ds.query)
    img = Image.open(ds.train[0].path)
    assert img.size == (16, 32) and img.format == "JPEG"
    assert np.asarray(img).std() > 5  # not a blank picture


def test_cache_is_reused_and_spec_changes_regenerate(tmp_path):
    spec = SyntheticSpec(domain="d", **TINY)
    root = generate_domain(spec, tmp_path, progress=False)
    marker = root / "market1501" / "marker"
    marker.write_text("x")
    assert generate_domain(spec, tmp_path, progress=False) == root and marker.exists()
    meta = root / "synthetic.json"
    meta.write_text(meta.read_text().replace('"version": ', '"version": 1000 + '))  # corrupt -> stale
    generate_domain(spec, tmp_path, progress=False)
    assert not marker.exists()
    assert SyntheticSpec(domain="d").key() == "synthetic_d" and spec.key().startswith("synthetic_d-")


def test_spec_validation_and_cache_dir(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="unknown synthetic domain"):
        SyntheticSpec(domain="zz")
    with pytest.raises(ValueError, match="num_cameras"):
        SyntheticSpec(num_cameras=9)
    monkeypatch.setenv("OMNIREID_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "synthetic"
    assert len(DOMAIN_STYLES) >= 3


def test_parallel_generation_writes_the_same_files(tmp_path):
    spec = SyntheticSpec(domain="a", seed=1, **dict(TINY, num_ids=40, num_distractors=120))
    serial = generate_domain(spec, tmp_path / "serial", progress=False, workers=1)
    parallel = generate_domain(spec, tmp_path / "parallel", progress=False, workers=2)
    ds, dp = digest(serial), digest(parallel)
    assert len(ds) >= 200 and ds == dp


@pytest.mark.parametrize("stale", [False, True])
def test_two_generators_of_one_domain_draw_it_once(tmp_path, monkeypatch, stale):
    """Two processes (here two threads) that want the same domain at once: one draws it, the
    other waits and reads it, whether the cache is missing or stale. Without the domain's lock
    both drew it, and one deleted the folder while the other replaced it."""
    from omnireid.data import synthetic

    spec = SyntheticSpec(domain="c", seed=2, **TINY)
    if stale:
        root = generate_domain(spec, tmp_path, progress=False, workers=1)
        meta = root / "synthetic.json"
        meta.write_text(meta.read_text().replace('"version": ', '"version": 1000 + '))
    real, calls = synthetic._render_all, []

    def slow_render(*args, **kwargs):
        calls.append(threading.get_ident())
        time.sleep(0.3)  # widen the window in which the other thread would start its own
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, "_render_all", slow_render)
    start = threading.Barrier(2)
    roots, errors = [], []

    def want():
        start.wait()
        try:
            roots.append(generate_domain(spec, tmp_path, progress=False, workers=1))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=want) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(calls) == 1 and len(set(roots)) == 1
    fresh = generate_domain(spec, tmp_path / "fresh", progress=False, workers=1)
    assert digest(roots[0]) == digest(fresh) and digest(fresh)
