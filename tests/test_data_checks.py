"""Data problems: manifests checked (paths inside the root, duplicates, conflicting rows),
decoder failures and decompression bombs as the library's image error naming the file, and the
skip policy of the loaders."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from omnireid.data import Sample, load_dataset
from omnireid.data.decode import read_image
from omnireid.data.loaders import build_test_loader, build_train_loader
from omnireid.errors import DataError, ImageError, UsageError
from tests._robust_fixtures import person_jpeg, write_manifest


def _manifest(tmp_path, rows: list[str]):
    for rel in ("images/a.jpg", "images/b.jpg", "images/c.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(person_jpeg(1, 0, 0))
    path = tmp_path / "m.csv"
    path.write_text("path,pid,camid,split\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("row, why", [
    ("../x.jpg,1,0,train", "outside the manifest's folder"),
    ("images/../../x.jpg,1,0,train", "outside the manifest's folder"),
    ("/etc/hostname,1,0,train", "absolute path"),
])
def test_manifest_paths_stay_inside_its_folder(tmp_path, row, why):
    m = _manifest(tmp_path, ["images/a.jpg,1,0,train", row])
    with pytest.raises(DataError, match=why) as err:
        load_dataset("csv_manifest", m)
    assert "m.csv:line 3" in str(err.value)  # the header is line 1


def test_absolute_paths_with_the_explicit_option(tmp_path):
    m = _manifest(tmp_path, [f"{tmp_path / 'images' / 'a.jpg'},1,0,train", "images/b.jpg,1,1,train"])
    ds = load_dataset("csv_manifest", m, allow_absolute=True)
    assert len(ds.train) == 2


def test_duplicate_rows_refused_or_dropped_by_policy(tmp_path):
    m = _manifest(tmp_path, ["images/a.jpg,1,0,gallery", "images/b.jpg,2,0,gallery",
                             "images/a.jpg,1,0,gallery", "images/c.jpg,1,1,query"])
    with pytest.raises(DataError, match=r"1 duplicate row\(s\), e.g. lines 2 and 4 \(images/a.jpg\)"):
        load_dataset("csv_manifest", m)
    ds = load_dataset("csv_manifest", m, duplicates="drop")
    assert [s.path.rsplit("/", 1)[1] for s in ds.gallery] == ["a.jpg", "b.jpg"]
    assert ds.extra["duplicates_dropped"] == 1
    with pytest.raises(UsageError, match="duplicates must be one of error, drop"):
        load_dataset("csv_manifest", m, duplicates="keep")


@pytest.mark.parametrize("rows, match", [
    (["images/a.jpg,1,0,train", "images/a.jpg,2,0,train"], "under two identities"),
    (["images/a.jpg,1,0,gallery", "images/a.jpg,1,1,gallery"], "under two cameras"),
    (["images/a.jpg,1,0,train", "images/a.jpg,1,0,query"], "both for training and for testing"),
])
def test_conflicting_rows_are_refused_even_with_drop(tmp_path, rows, match):
    m = _manifest(tmp_path, rows)
    with pytest.raises(DataError, match=match):
        load_dataset("csv_manifest", m, duplicates="drop")


def test_the_same_image_as_query_and_gallery_is_allowed(tmp_path):
    m = _manifest(tmp_path, ["images/a.jpg,1,0,query", "images/a.jpg,1,0,gallery", "images/b.jpg,1,1,gallery"])
    ds = load_dataset("csv_manifest", m)
    assert len(ds.query) == 1 and len(ds.gallery) == 2


def test_binary_file_given_as_manifest(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match="m.csv: not a .*CSV file"):
        load_dataset("csv_manifest", path)


def test_unknown_reader_option_is_named(tmp_path):
    m = write_manifest(tmp_path, range(2))
    with pytest.raises(UsageError, match="'duplicate' is not an option of the csv_manifest reader. "
                                         "Did you mean 'duplicates'"):
        load_dataset("csv_manifest", m, duplicate="drop")


def _bomb(path, pixels=(12000, 12000)):
    Image.new("L", pixels).save(path)  # compresses to a few hundred kB


def test_decompression_bomb_is_an_image_error_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000_000)  # the bomb check fires above 2x this
    png, jpg = tmp_path / "bomb.png", tmp_path / "bomb.jpg"
    _bomb(png)
    _bomb(jpg)
    for path in (png, jpg):
        with pytest.raises(ImageError, match=f"{path.name}.*decompression bomb"):
            read_image(path)
    # the training loader decodes whole JPEGs with torchvision, which has no limit of its own
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = build_train_loader([Sample(str(jpg), 0, 0)], height=32, width=16, batch_size=1,
                                    sampler="random", num_workers=0)
        with pytest.raises(ImageError, match="bomb.jpg.*decompression bomb"):
            next(iter(loader))


def test_unreadable_image_in_a_worker_keeps_its_type_and_name(tmp_path):
    good = tmp_path / "good.jpg"
    good.write_bytes(person_jpeg(1, 0, 0))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    samples = [Sample(str(good), 0, 0), Sample(str(bad), 0, 0)]
    with pytest.raises(ImageError, match="bad.jpg"):
        list(build_test_loader(samples, height=32, width=16, batch_size=2, num_workers=1))
    batches = list(build_test_loader(samples, height=32, width=16, batch_size=2, num_workers=1,
                                     on_error="skip"))
    assert [len(b) for b in batches] == [1]
    assert [(s.path, "corrupt" in s.reason or "not a recognised" in s.reason) for s in batches[0].skipped] == \
        [(str(bad), True)]


def test_truncated_and_text_images(tmp_path):
    full = person_jpeg(3, 1, 0)
    (tmp_path / "cut.jpg").write_bytes(full[: len(full) // 2])
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "empty.jpg").write_bytes(b"")
    for name in ("cut.jpg", "text.png", "empty.jpg"):
        with pytest.raises(ImageError, match=name):
            read_image(tmp_path / name)
    assert np.asarray(read_image(io.BytesIO(full))).shape == (64, 32, 3)  # a good one still decodes
