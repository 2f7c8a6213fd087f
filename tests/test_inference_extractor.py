"""FeatureExtractor: every input kind gives the embedding of the same RGB crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import omnireid
from omnireid.inference import FeatureExtractor
from omnireid.models import create_model

# numerics of the fast paths depend on the instruction set: also run with AVX2 forced (make test-isa)
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.isa]

SIZE = (64, 32)
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("osnet_x0_25").eval()


@pytest.fixture(scope="module")
def crops():
    rng = np.random.default_rng(0)
    # different sizes, so resizing is exercised
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(80, 40), (64, 32), (50, 30)]]


def manual_input(rgb: np.ndarray) -> torch.Tensor:
    """Independent preprocessing: PIL bilinear resize, /255, ImageNet mean/std, CHW."""
    img = Image.fromarray(rgb).resize((SIZE[1], SIZE[0]), Image.BILINEAR)
    x = (np.asarray(img, np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x.transpose(2, 0, 1).copy())


@pytest.fixture(scope="module")
def reference(model, crops):
    with torch.no_grad():
        return model(torch.stack([manual_input(c) for c in crops])).embedding.numpy()


def make(model, **kw) -> FeatureExtractor:
    return FeatureExtractor(model, size=SIZE, batch_size=2, backend="eager", **kw)


def test_public_name_is_lazy() -> None:
    assert omnireid.FeatureExtractor is FeatureExtractor


def test_numpy_rgb_matches_manual_preprocessing(model, crops, reference) -> None:
    raw = make(model, normalize=False)(crops)
    assert raw.dtype == np.float32 and raw.shape == (3, 512)
    np.testing.assert_allclose(raw, reference, atol=1e-5)
    unit = make(model)(crops)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(unit, reference / np.linalg.norm(reference, axis=1, keepdims=True),
                               atol=1e-5)


def test_every_input_kind_agrees(model, crops, reference, tmp_path) -> None:
    fe = make(model, normalize=False)
    paths = []
    for i, c in enumerate(crops):
        p = tmp_path / f"{i}.png"
        Image.fromarray(c).save(p)
        paths.append(p)
    kinds = {
        "path": [str(p) for p in paths],
        "pathlike": paths,
        "pil": [Image.fromarray(c) for c in crops],
        "bgr": [c[:, :, ::-1].copy() for c in crops],
        "uint8 tensor": [torch.from_numpy(c).permute(2, 0, 1).contiguous() for c in crops],
        "float tensor": [manual_input(c) for c in crops],
        "float batch": torch.stack([manual_input(c) for c in crops]),
        "rgba": [np.dstack([c, np.full(c.shape[:2], 255, np.uint8)]) for c in crops],
    }
    for kind, images in kinds.items():
        out = fe(images, bgr=kind == "bgr")
        np.testing.assert_allclose(out, reference, atol=1e-5, err_msg=kind)
    # BGR read as RGB must differ: the flag matters
    assert np.abs(fe([c[:, :, ::-1].copy() for c in crops]) - reference).max() > 1e-3
    # a single image (not in a list) gives one row
    np.testing.assert_allclose(fe(crops[0]), reference[:1], atol=1e-5)


def test_grayscale(model) -> None:
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (70, 36), dtype=np.uint8)
    expected_rgb = np.repeat(gray[:, :, None], 3, axis=2)
    with torch.no_grad():
        ref = model(manual_input(expected_rgb)[None]).embedding.numpy()
    fe = make(model, normalize=False)
    for image in [gray, gray[:, :, None], Image.fromarray(gray, mode="L"), torch.from_numpy(gray)[None]]:
        np.testing.assert_allclose(fe([image]), ref, atol=1e-5)


def test_fast_backend_and_eager_batches_agree(model, crops, reference) -> None:
    fused = FeatureExtractor(model, size=SIZE, backend="fused", normalize=False)(crops)
    np.testing.assert_allclose(fused, reference, atol=1e-4)
    eager = FeatureExtractor(model, size=SIZE, backend="eager", normalize=False, batch_size=2)(crops)
    np.testing.assert_allclose(eager, reference, atol=1e-5)


def test_model_by_name_with_weights(tmp_path) -> None:
    from omnireid.models import save_weights

    torch.manual_seed(3)
    m = create_model("osnet_x0_25", num_classes=5).eval()
    path = save_weights(m, tmp_path / "w.pth", layout="torchreid")
    img = np.random.default_rng(2).integers(0, 256, (64, 32, 3), dtype=np.uint8)
    fe = FeatureExtractor("osnet_x0_25", weights=path, size=SIZE, backend="eager",
                          normalize=False)
    with torch.no_grad():
        ref = m(manual_input(img)[None]).embedding.numpy()
    np.testing.assert_allclose(fe([img]), ref, atol=1e-5)


def test_bad_inputs_name_the_problem(model, tmp_path) -> None:
    fe = make(model)
    with pytest.raises(ValueError, match="uint8"):
        fe([np.zeros((64, 32, 3), np.float32)])
    with pytest.raises(ValueError, match=r"shape"):
        fe([np.zeros((64, 32, 5), np.uint8)])
    with pytest.raises(TypeError, match="unsupported image type"):
        fe([3.5])
    with pytest.raises(ValueError, match="preprocessed"):
        fe([torch.zeros(3, 10, 10)])
    missing = tmp_path / "nope.jpg"
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        fe([str(missing)])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    good = np.zeros((64, 32, 3), np.uint8)
    with pytest.raises(OSError, match="broken.jpg"):
        fe([good, str(broken)])
    result = fe.extract([good, str(broken), good])
    assert result.embeddings.shape == (2, 512)
    assert result.indices.tolist() == [0, 2]
    assert result.failed[0][0] == 1 and "broken.jpg" in result.failed[0][1]
    with pytest.raises(ValueError, match="backend"):
        FeatureExtractor(model, backend="magic")


def test_decoding_workers_keep_order_failures_and_values(model, crops, tmp_path) -> None:
    paths = []
    for i, c in enumerate(crops * 3):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(c).save(paths[-1])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    items = paths[:4] + [broken] + paths[4:]
    inline = make(model, num_workers=0).extract(items)
    threaded = make(model, num_workers=3).extract(items)
    assert inline.indices.tolist() == threaded.indices.tolist() == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert [i for i, _ in threaded.failed] == [4] and "broken.jpg" in threaded.failed[0][1]
    np.testing.assert_array_equal(inline.embeddings, threaded.embeddings)
    with pytest.raises(OSError, match="broken.jpg"):
        make(model, num_workers=3)(items)
    with pytest.raises(ValueError, match="num_workers"):
        make(model, num_workers=-1)
    # defaults: the PyTorch CPU backends decode on the calling thread
    assert make(model).num_workers == 0


def test_embed_boxes_crops_like_slicing(model) -> None:
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (100, 60, 3), dtype=np.uint8)
    boxes = [[10.2, 5.7, 40.1, 80.9], [-5, -5, 20, 30], [50, 90, 70, 120]]
    # by hand: floor the top-left, ceil the bottom-right, clip to the frame
    by_hand = [frame[5:81, 10:41], frame[0:30, 0:20], frame[90:100, 50:60]]
    fe = make(model)
    expected = fe(by_hand)
    np.testing.assert_array_equal(fe.embed_boxes(frame, np.array(boxes)), expected)
    np.testing.assert_array_equal(fe.embed_boxes(np.ascontiguousarray(frame[:, :, ::-1]), boxes,
                                                 bgr=True), expected)
    np.testing.assert_array_equal(fe.embed_boxes(Image.fromarray(frame), boxes), expected)
    assert fe.embed_boxes(frame, np.zeros((0, 4))).shape == (0, 512)
    with pytest.raises(ValueError, match=r"box #1 .* no area"):
        fe.embed_boxes(frame, [[0, 0, 10, 10], [30, 30, 30, 50]])
    with pytest.raises(ValueError, match="box #0"):
        fe.embed_boxes(frame, [[70, 0, 90, 10]])  # entirely right of the frame
    with pytest.raises(ValueError, match="NaN"):
        fe.embed_boxes(frame, [[0, 0, np.nan, 10]])
    with pytest.raises(ValueError, match="frame"):
        fe.embed_boxes(frame[:, :, 0], boxes)
