"""The controlled domain-shift sets: style and population change separately, deterministically."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omnireid.data import list_datasets, load_dataset
from omnireid.data.synthetic import SyntheticSpec, _rng, _scene, generate_domain
from omnireid.data.synthetic_domains import (
    CAMERA_STYLES,
    LEAVE_ONE_OUT,
    POPULATIONS,
    SHIFT_DOMAINS,
    SHIFT_VERSION,
    SINGLE_SOURCE,
    leave_one_out_splits,
    shift_kind,
)
from omnireid.data.synthetic_render import Camera, apply_camera, make_identity

TINY = dict(num_ids=10, num_test_ids=5, num_cameras=3, cameras_per_id=(2, 3), images_per_camera=(1, 2),
            num_distractors=3, num_junk=1, height=32, width=16)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for name, data in files(root).items():
        h.update(name.encode())
        h.update(data)
    return h.hexdigest()


def same(a, b) -> bool:
    """Two dataclass records with equal fields (arrays compared element by element)."""
    return all(np.array_equal(getattr(a, f.name), getattr(b, f.name)) if isinstance(getattr(a, f.name), np.ndarray)
               else getattr(a, f.name) == getattr(b, f.name) for f in dataclasses.fields(a))


def spec(domain: str, **options) -> SyntheticSpec:
    return SyntheticSpec.registered(domain, **{**TINY, **options})


def test_generation_is_deterministic_seeded_and_worker_independent(tmp_path):
    one = generate_domain(spec("p1s2", seed=3), tmp_path / "one", progress=False, workers=1)
    two = generate_domain(spec("p1s2", seed=3), tmp_path / "two", progress=False, workers=2)
    assert files(one) and digest(one) == digest(two)
    other_seed = generate_domain(spec("p1s2", seed=4), tmp_path / "one", progress=False)
    assert digest(other_seed) != digest(one)
    meta = json.loads((one / "synthetic.json").read_text())
    assert meta["version"] == SHIFT_VERSION
    assert meta["population"]["name"] == "p1" and meta["camera_style"]["name"] == "s2"


def test_style_only_target_has_the_same_people_and_plan_in_another_style(tmp_path):
    source = generate_domain(spec("p1s1"), tmp_path, progress=False)
    target = generate_domain(spec("p1s2"), tmp_path, progress=False)
    fs, ft = files(source), files(target)
    # same identities, cameras, frames and splits: the file names are the whole plan
    assert sorted(fs) == sorted(ft) and len(fs) > 20
    assert all(fs[k] != ft[k] for k in fs)  # ... but every picture looks different
    s, t = spec("p1s1"), spec("p1s2")
    for pid in (1, 7):  # the same person, drawn from the same population stream
        a = make_identity(pid, POPULATIONS["p1"], _rng(s, 4, pid))
        b = make_identity(pid, POPULATIONS["p1"], _rng(t, 4, pid))
        assert same(a, b)
    cs, ct = _scene(s).cameras, _scene(t).cameras
    for a, b in zip(cs, ct):  # same rig, other photometry
        assert np.array_equal(a.view_probs, b.view_probs) and a.scale == b.scale and a.floor == b.floor
        assert not np.array_equal(a.cast, b.cast) and a.gain != b.gain
    # s2 is the dim style: the same files are darker on average
    bright = [np.asarray(Image.open(source / k)).mean() - np.asarray(Image.open(target / k)).mean() for k in fs]
    assert np.mean(bright) > 20


def test_population_only_target_has_other_people_under_the_same_cameras(tmp_path):
    s, p = spec("p1s1"), spec("p2s1")
    assert all(same(a, b) for a, b in zip(_scene(s).cameras, _scene(p).cameras, strict=True))
    a = make_identity(1, POPULATIONS["p1"], _rng(s, 4, 1))
    b = make_identity(1, POPULATIONS["p2"], _rng(p, 4, 1))
    assert not np.array_equal(a.top, b.top)
    source = generate_domain(s, tmp_path, progress=False)
    target = generate_domain(p, tmp_path, progress=False)
    assert digest(source) != digest(target)


def test_registry_roles_and_shift_kinds():
    for name, dom in SHIFT_DOMAINS.items():
        assert f"synthetic_{name}" in list_datasets()
        assert dom.population in POPULATIONS and dom.style in CAMERA_STYLES
    src = SINGLE_SOURCE["source"]
    for kind, targets in SINGLE_SOURCE["targets"].items():
        assert targets and all(shift_kind(src, t) == kind for t in targets)
    assert shift_kind("synthetic_p1s1", "p1s1") == "none"
    splits = leave_one_out_splits()
    assert len(splits) == len(LEAVE_ONE_OUT) >= 3
    for sources, held_out in splits:
        assert held_out not in sources and len(sources) == len(LEAVE_ONE_OUT) - 1
        assert all(shift_kind(s, held_out) == "both" for s in sources)
    with pytest.raises(KeyError):
        shift_kind("p1s1", "p9s9")


def test_registered_defaults_and_loading(tmp_path):
    default = SyntheticSpec.registered("p2s1")
    assert (default.height, default.width) == (64, 32) and default.key() == "synthetic_p2s1"
    assert spec("p2s1").key().startswith("synthetic_p2s1-")
    assert SyntheticSpec.registered("a") == SyntheticSpec(domain="a") and SyntheticSpec(domain="a").version == 3
    with pytest.raises(ValueError, match="p1s1"):
        SyntheticSpec(domain="p9s9")
    ds = load_dataset("synthetic_p3s3", tmp_path, **TINY)
    assert ds.name == "synthetic_p3s3" and ds.query and ds.gallery and ds.num_train_pids == 5
    assert Image.open(ds.train[0].path).size == (16, 32)


def test_tone_curve_darkens_mid_tones_only():
    base = dict(index=0, view_probs=np.full(4, 0.25), scale=(0.8, 0.9), gain=1.0, cast=np.ones(3, np.float32),
                contrast=1.0, saturation=1.0, blur=0.0, noise=0.0, resolution=1.0, jpeg_quality=95,
                bg=np.zeros(3), bg2=np.zeros(3), clutter=np.zeros((4, 3)), floor=0.7)
    img = np.broadcast_to(np.linspace(0, 1, 32, dtype=np.float32)[None, :, None], (16, 32, 3)).copy()
    flat = apply_camera(img, Camera(**base), np.random.default_rng(0)).astype(int)
    dark = apply_camera(img, Camera(**base, gamma=1.5), np.random.default_rng(0)).astype(int)
    # the brightness jitter is the same draw in both; gamma > 1 pulls the middle down, the ends stay
    assert (dark[:, 8:24] < flat[:, 8:24] - 10).all()
    assert np.abs(dark[:, 0] - flat[:, 0]).max() <= 1


def test_registered_test_split_follows_a_changed_number_of_identities():
    assert SyntheticSpec.registered("p1s1").num_train_ids == 400
    small = SyntheticSpec.registered("p1s1", num_ids=10)
    assert small.num_test_ids is None and small.num_train_ids == 5
    assert SyntheticSpec.registered("p1s1", num_ids=10, num_test_ids=7).num_train_ids == 3


def test_narrow_palette_pulls_every_colour_to_the_mean_by_the_amount():
    from omnireid.data.synthetic_domains import P2_FULL, narrow_palette

    narrowed = narrow_palette(P2_FULL, 0.55)
    before, after = np.array(P2_FULL.palette), np.array(narrowed.palette)
    mean = before.mean(0)
    # the mean colour stays; every deviation from it shrinks to 45 % (rounded to 4 decimals)
    np.testing.assert_allclose(after.mean(0), mean, atol=1e-4)
    np.testing.assert_allclose(after - mean, 0.45 * (before - mean), atol=1e-4)
    assert narrowed.name == P2_FULL.name and narrowed.bag_p == P2_FULL.bag_p
    assert narrow_palette(P2_FULL, 0.0).palette == tuple(tuple(round(v, 4) for v in c) for c in P2_FULL.palette)
    with pytest.raises(ValueError):
        narrow_palette(P2_FULL, 1.0)


def test_registered_p2_palette_is_narrowed_by_the_recorded_amount():
    from omnireid.data.synthetic_domains import (
        P1,
        P2_FULL,
        PALETTE_NARROWING,
        POPULATION_STRENGTH,
        blend_population,
    )

    blended = np.array(blend_population(P1, P2_FULL, POPULATION_STRENGTH["p2"], "p2", "").palette)
    registered = np.array(POPULATIONS["p2"].palette)
    spread = lambda pal: np.linalg.norm(pal - pal.mean(0), axis=1)  # noqa: E731
    np.testing.assert_allclose(spread(registered), (1 - PALETTE_NARROWING["p2"]) * spread(blended), atol=2e-4)
    assert POPULATIONS["p3"].palette == blend_population(P1, POPULATIONS["p3"], 1.0, "p3", "").palette


def test_a_version_bump_keeps_the_images_of_unchanged_recipes(tmp_path, monkeypatch):
    """The random streams are keyed by SHIFT_STREAMS, not by the generator version, so a new
    version that changes some recipes leaves the images of the others alone."""
    import omnireid.data.synthetic as synthetic

    before = digest(generate_domain(spec("p1s1"), tmp_path / "now", progress=False, workers=1))
    monkeypatch.setattr(synthetic, "SHIFT_VERSION", SHIFT_VERSION + 1)
    after = digest(generate_domain(spec("p1s1"), tmp_path / "bumped", progress=False, workers=1))
    assert before == after
    monkeypatch.setattr(synthetic, "SHIFT_STREAMS", synthetic.SHIFT_STREAMS + 1)
    assert digest(generate_domain(spec("p1s1"), tmp_path / "streams", progress=False, workers=1)) != before
