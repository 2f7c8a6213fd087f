"""Decoding, transforms, samplers and loaders."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from omnireid.data import (
    CameraBalancedSampler,
    DatasetBalancedSampler,
    ImageDecodeError,
    RandomIdentitySampler,
    Sample,
    ShuffleSampler,
    build_test_loader,
    build_test_transform,
    build_train_loader,
    build_train_transform,
    check_images,
    read_image,
)

# --------------------------------------------------------------------------------------------
# decoding


def test_read_image_modes(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 4, 3), dtype=np.uint8)
    cases = {}
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    cases["gray.png"] = np.repeat(rgb[..., :1], 3, axis=2)
    rgba = np.dstack([rgb, np.full((6, 4), 7, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    cases["rgba.png"] = rgb  # alpha dropped, colours kept (as torchreid's convert("RGB"))
    pal = Image.fromarray(rgb).quantize(colors=8)
    pal.save(tmp_path / "pal.png")
    cases["pal.png"] = np.asarray(pal.convert("RGB"))
    sixteen = (rgb[..., 0].astype(np.uint16) * 257)
    deep = Image.fromarray(sixteen)
    assert deep.mode == "I;16"
    deep.save(tmp_path / "deep.png")
    cases["deep.png"] = np.repeat(rgb[..., :1], 3, axis=2)  # 65535 -> 255 scaling, not clipping
    for name, expected in cases.items():
        img = read_image(tmp_path / name)
        assert img.mode == "RGB" and img.size == (4, 6), name
        np.testing.assert_array_equal(np.asarray(img), expected, err_msg=name)
    cmyk = Image.new("CMYK", (4, 6), (0, 255, 255, 0))  # pure red in CMYK
    cmyk.save(tmp_path / "cmyk.jpg", quality=100)
    red = np.asarray(read_image(tmp_path / "cmyk.jpg")).reshape(-1, 3).mean(0)
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def test_corrupt_and_truncated_files_are_named(tmp_path):
    good = io.BytesIO()
    Image.new("RGB", (64, 128), (10, 200, 30)).save(good, format="JPEG")
    (tmp_path / "trunc.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("trunc.jpg", "junk.jpg", "empty.png", "missing.jpg"):
        with pytest.raises(ImageDecodeError) as err:
            read_image(tmp_path / name)
        assert name in str(err.value)
    (tmp_path / "ok.jpg").write_bytes(good.getvalue())
    bad = check_images([str(tmp_path / n) for n in ("ok.jpg", "trunc.jpg", "junk.jpg")])
    assert [p.split("/")[-1] for p, _ in bad] == ["trunc.jpg", "junk.jpg"]


# --------------------------------------------------------------------------------------------
# transforms


def test_test_transform_is_pil_bilinear_then_imagenet_normalisation():
    arr = np.random.default_rng(1).integers(0, 256, (97, 41, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    out = build_test_transform(32, 16)(img)
    ref = np.asarray(img.resize((16, 32), Image.BILINEAR), dtype=np.float32) / 255.0
    ref = (ref - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert out.shape == (3, 32, 16) and out.dtype == torch.float32
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), ref, atol=1e-5)


def test_train_transform_shapes_and_normalisation():
    x = torch.full((3, 50, 20), 255, dtype=torch.uint8)
    t = build_train_transform(32, 16, random_flip=True, random_crop=True, color_jitter=False, random_erase=False)
    y = t(x)
    assert y.shape == (3, 32, 16) and y.dtype == torch.float32
    expected = (1.0 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(y.mean(dim=(1, 2)), expected)
    erase = build_train_transform(32, 16, random_erase=True, color_jitter=True)
    torch.manual_seed(0)
    zeros = [int((erase(x) == 0).all(0).sum()) for _ in range(20)]
    assert any(z > 0 for z in zeros) and any(z == 0 for z in zeros)  # erased with p = 0.5
    raw = build_train_transform(32, 16, standardize=False)(x)
    assert raw.dtype == torch.uint8


def test_flip_really_flips():
    x = torch.zeros((3, 8, 4), dtype=torch.uint8)
    x[:, :, 0] = 255
    t = build_train_transform(8, 4, random_flip=True, standardize=False)
    torch.manual_seed(0)
    lefts = {int(t(x)[0, 0, 0]) for _ in range(30)}
    assert lefts == {0, 255}


# --------------------------------------------------------------------------------------------
# samplers


def reference_identity_batches(indices, batch_size):
    return [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]


def test_identity_sampler_pk_structure_and_torchreid_semantics():
    rng = np.random.default_rng(0)
    pids = [int(p) for p in rng.integers(0, 12, 200)] + [12]  # id 12 has a single image
    s = RandomIdentitySampler(pids, batch_size=16, num_instances=4, seed=3)
    idx = list(s)
    assert len(idx) == len(s) and len(idx) % 16 == 0
    per_pid = Counter(pids)
    expected_chunks = {p: max(n, 4) // 4 for p, n in per_pid.items()}
    used = Counter()
    for batch in reference_identity_batches(idx, 16):
        groups = [batch[i:i + 4] for i in range(0, 16, 4)]
        owners = [{pids[i] for i in g} for g in groups]
        assert all(len(o) == 1 for o in owners)  # each K-chunk is one identity
        assert len({next(iter(o)) for o in owners}) == 4  # P distinct identities per batch
        for o in owners:
            used[next(iter(o))] += 1
    assert all(used[p] <= expected_chunks[p] for p in used)
    # no index repeats within an identity unless it had fewer than K images
    for p, n in per_pid.items():
        if n >= 4:
            mine = [i for i in idx if pids[i] == p]
            assert len(mine) == len(set(mine))
    # the loop stops only when fewer than P identities have chunks left
    left = {p: expected_chunks[p] - used[p] for p in expected_chunks}
    assert sum(v > 0 for v in left.values()) < 4


def test_identity_sampler_seeded_and_epochs_differ():
    pids = [i // 5 for i in range(100)]
    a, b = RandomIdentitySampler(pids, 8, 4, seed=1), RandomIdentitySampler(pids, 8, 4, seed=1)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    assert list(RandomIdentitySampler(pids, 8, 4, seed=2)) != list(b)
    with pytest.raises(ValueError, match="multiple"):
        RandomIdentitySampler(pids, 10, 4)


def test_ddp_ranks_get_disjoint_whole_batches():
    pids = [i // 6 for i in range(240)]
    whole = list(RandomIdentitySampler(pids, 8, 4, seed=5))
    ranks = [RandomIdentitySampler(pids, 8, 4, seed=5, rank=r, world_size=3) for r in range(3)]
    parts = [list(r) for r in ranks]
    assert len({len(p) for p in parts}) == 1 and len(parts[0]) % 8 == 0
    batches = reference_identity_batches(whole, 8)
    for r, part in enumerate(parts):
        assert reference_identity_batches(part, 8) == batches[r::3][: len(part) // 8]
    flat = [i for p in parts for i in p]
    assert len(flat) == len(set(flat))  # no image twice across ranks within the epoch
    shuffles = [list(ShuffleSampler(10, 1, seed=0, rank=r, world_size=2)) for r in range(2)]
    assert sorted(shuffles[0] + shuffles[1]) == list(range(10))


def test_camera_and_dataset_balanced_samplers():
    camids = [i % 4 for i in range(80)]
    s = CameraBalancedSampler(camids, batch_size=8, cameras_per_batch=2, seed=0)
    idx = list(s)
    for batch in reference_identity_batches(idx, 8):
        c = Counter(camids[i] for i in batch)
        assert len(c) == 2 and set(c.values()) == {4}
    assert len(idx) == len(set(idx))
    dsetids = [0] * 30 + [1] * 10
    d = DatasetBalancedSampler(dsetids, batch_size=4, seed=0)
    dbatches = reference_identity_batches(list(d), 4)
    assert all(Counter(dsetids[i] for i in b) == {0: 2, 1: 2} for b in dbatches)
    assert len(dbatches) == 5  # the small source (10 images, 2 per batch) runs out after 5 batches
    with pytest.raises(ValueError, match="multiple"):
        CameraBalancedSampler(camids, batch_size=6, cameras_per_batch=4)


# --------------------------------------------------------------------------------------------
# loaders


def write_samples(tmp_path, n=24, ids=6):
    samples = []
    for i in range(n):
        p = tmp_path / f"{i:03d}.jpg"
        Image.new("RGB", (20, 40), (i * 10 % 256, 50, 100)).save(p)
        samples.append(Sample(str(p), i % ids, i % 3, 0))
    return samples


def test_train_loader_batches(tmp_path):
    samples = write_samples(tmp_path)
    loader = build_train_loader(samples, height=32, width=16, batch_size=8, num_instances=2, num_workers=0, seed=0)
    batches = list(loader)
    assert batches and all(b.images.shape == (8, 3, 32, 16) for b in batches)
    b = batches[0]
    assert b.pids.dtype == torch.int64 and len(b.paths) == 8
    assert all(samples[[s.path for s in samples].index(p)].pid == int(pid) for p, pid in zip(b.paths, b.pids))
    loader.sampler.set_epoch(1)
    assert [x.paths for x in loader] != [x.paths for x in batches]


def test_test_loader_order_and_skip(tmp_path):
    samples = write_samples(tmp_path, n=5)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8broken")
    samples.insert(2, Sample(str(tmp_path / "bad.jpg"), 0, 0))
    with pytest.raises(ImageDecodeError, match="bad.jpg"):
        list(build_test_loader(samples, height=16, width=8, batch_size=4, num_workers=0))
    batches = list(build_test_loader(samples, height=16, width=8, batch_size=4, num_workers=0, on_error="skip"))
    assert [len(b) for b in batches] == [3, 2] and [b.num_skipped for b in batches] == [1, 0]
    assert [p for b in batches for p in b.paths] == [s.path for s in samples if "bad" not in s.path]
    ref = build_test_transform(16, 8)(Image.open(samples[0].path))
    torch.testing.assert_close(batches[0].images[0], ref)


def test_train_loader_with_workers_is_seeded(tmp_path):
    samples = write_samples(tmp_path, n=16, ids=4)

    def run():
        loader = build_train_loader(samples, height=16, width=8, batch_size=8, num_instances=2, num_workers=1,
                                    seed=4, random_erase=True, persistent_workers=False)
        return torch.cat([b.images for b in loader])

    torch.testing.assert_close(run(), run())
