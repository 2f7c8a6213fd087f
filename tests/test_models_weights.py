"""Checkpoint reading, torchreid layouts, safety and error reporting."""

from __future__ import annotations

import logging
import re

import pytest
import torch

from omnireid.models import create_model, load_weights, save_weights
from omnireid.models.weights import (
    KNOWN_WEIGHTS,
    WeightsError,
    detect_layout,
    from_torchreid,
    read_checkpoint,
    to_torchreid,
)


def _x() -> torch.Tensor:
    return torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(0))


def _same_output(a, b) -> bool:
    a.eval(), b.eval()
    with torch.no_grad():
        return torch.equal(a(_x()).embedding, b(_x()).embedding)


@pytest.mark.parametrize(
    "name,layout",
    [("osnet_x0_25", "torchreid_osnet"), ("osnet_ibn_x1_0", "torchreid_osnet"),
     ("osnet_ain_x0_25", "torchreid_osnet_ain")],
)
def test_torchreid_layout_round_trip(name: str, layout: str, tmp_path) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=4)
    path = save_weights(model, tmp_path / "tr.pth", layout="torchreid")
    state = torch.load(path, weights_only=True)
    assert detect_layout(state) == layout
    # spot-check torchreid's naming conventions
    keys = set(state)
    if layout == "torchreid_osnet":
        assert "conv2.0.conv2a.conv1.weight" in keys and "conv2.0.conv2d.3.bn.weight" in keys
        assert "conv2.2.0.conv.weight" in keys and "conv3.2.0.conv.weight" in keys
        assert not any(k.startswith("pool") for k in keys)
    else:
        assert "conv2.0.conv2.3.layers.3.conv2.weight" in keys and "pool2.0.conv.weight" in keys
        assert "conv2.0.IN.weight" in keys and "conv2.0.conv3.bn.weight" not in keys
    ours = model.state_dict()
    converted = from_torchreid(state, model.arch)
    assert set(converted) == set(ours)
    assert all(torch.equal(converted[k], ours[k]) for k in ours)
    torch.manual_seed(1)
    other = create_model(name, num_classes=4)
    load_weights(other, path)
    assert _same_output(model, other)


def test_to_torchreid_is_inverse_of_from_torchreid() -> None:
    model = create_model("osnet_ain_x0_5")
    sd = model.state_dict()
    back = from_torchreid(to_torchreid(sd, model.arch), model.arch)
    assert set(back) == set(sd)


def test_both_positions_have_no_torchreid_layout(tmp_path) -> None:
    model = create_model("osnet", width=0.25, in_positions=["both"] + ["none"] * 5)
    with pytest.raises(WeightsError, match="no layout"):
        save_weights(model, tmp_path / "x.pth", layout="torchreid")


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "module", "legacy", "safetensors"])
def test_checkpoint_containers(wrap: str, tmp_path) -> None:
    torch.manual_seed(0)
    model = create_model("osnet_x0_25", num_classes=3)
    sd = model.state_dict()
    path = tmp_path / "ckpt.pth"
    if wrap == "plain":
        torch.save(sd, path)
    elif wrap == "state_dict":
        torch.save({"state_dict": sd, "epoch": 3, "rank1": 0.5}, path)
    elif wrap == "module":
        torch.save({"module." + k: v for k, v in sd.items()}, path)
    elif wrap == "legacy":
        torch.save(sd, path, _use_new_zipfile_serialization=False)
        assert path.read_bytes()[:2] != b"PK"  # really the legacy, non-zip format
    else:
        path = save_weights(model, tmp_path / "ckpt.safetensors")
    other = create_model("osnet_x0_25", num_classes=3)
    load_weights(other, path)
    assert _same_output(model, other)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_refuses_arbitrary_pickles(tmp_path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": _Evil()}, path)
    with pytest.raises(WeightsError, match="evil.pth.*refused"):
        read_checkpoint(path)


def test_classifier_of_other_size_dropped_with_warning(tmp_path, caplog) -> None:
    src = create_model("osnet_x0_25", num_classes=10)
    path = save_weights(src, tmp_path / "w.pth")
    dst = create_model("osnet_x0_25", num_classes=4)
    before = dst.classifier.weight.clone()
    with caplog.at_level(logging.WARNING):
        report = load_weights(dst, path)
    assert report.dropped_classifier
    assert "dropping classifier" in caplog.text
    assert torch.equal(dst.classifier.weight, before)
    assert torch.equal(dst.conv1.conv.weight, src.conv1.conv.weight)


def test_missing_and_unexpected_keys_are_listed(tmp_path) -> None:
    sd = create_model("osnet_x0_25").state_dict()
    del sd["conv5.conv.weight"]
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError) as info:
        load_weights(create_model("osnet_x0_25"), sd)
    msg = str(info.value)
    assert "missing keys (1): conv5.conv.weight" in msg
    assert "unexpected keys (1): extra.weight" in msg


def test_wrong_model_reports_shape_mismatch(tmp_path) -> None:
    path = save_weights(create_model("osnet_x0_5"), tmp_path / "w.pth")
    with pytest.raises(WeightsError, match="shape mismatches"):
        load_weights(create_model("osnet_x0_25"), path)


def test_known_file_with_wrong_hash_is_rejected(tmp_path) -> None:
    name = next(iter(KNOWN_WEIGHTS.values())).filename
    path = tmp_path / name
    torch.save(create_model("osnet_x0_25").state_dict(), path)
    with pytest.raises(WeightsError, match=re.escape(name) + ".*sha256"):
        read_checkpoint(path)


def test_missing_file_named() -> None:
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        create_model("osnet_x0_25", weights="/no/such/nope.pth")


def test_garbage_file_named(tmp_path) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError, match="garbage.pth"):
        read_checkpoint(path)


# ---------------------------------------------------------------------------------------------
# known checkpoints: keyed by model and tag, recognised by hash, their preprocessing attached


@pytest.fixture
def known_tiny(tmp_path, monkeypatch):
    """A checkpoint registered as known (model osnet_x0_25, tag 'tinyset') with a preprocessing
    unlike the defaults: 64x32 input, mean 0.5, std 0.25."""
    from omnireid.models.weights import KnownWeights, Preprocessing, sha256_of

    torch.manual_seed(5)
    path = save_weights(create_model("osnet_x0_25"), tmp_path / "published.pth")
    pre = Preprocessing((64, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    entry = KnownWeights("published.pth", sha256_of(path), "osnet_x0_25", "tinyset", 0, pre)
    monkeypatch.setitem(KNOWN_WEIGHTS, entry.key, entry)
    return path, entry


def test_known_weights_are_keyed_by_model_and_tag():
    from omnireid.errors import UnknownNameError
    from omnireid.models.weights import known_weights

    assert KNOWN_WEIGHTS and all(key == (w.model, w.tag) for key, w in KNOWN_WEIGHTS.items())
    assert known_weights("osnet_x0_25", "msmt17").filename == "osnet_x0_25_msmt17.pth"
    with pytest.raises(UnknownNameError, match="osnet_x0_25/msmt17"):
        known_weights("osnet_x0_25", "duke")


def test_a_renamed_known_checkpoint_is_recognised_by_its_hash(known_tiny, tmp_path):
    from omnireid.models.weights import preprocessing_of

    path, entry = known_tiny
    renamed = tmp_path / "whatever-name.pt"
    renamed.write_bytes(path.read_bytes())
    model = create_model("osnet_x0_25")
    report = load_weights(model, renamed)
    assert report.sha256_verified and report.known == entry
    assert preprocessing_of(model) == entry.preprocessing
    assert preprocessing_of(model).input_size == (64, 32)


def test_an_unknown_checkpoint_leaves_the_default_preprocessing(tmp_path):
    from omnireid.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from omnireid.models.weights import preprocessing_of

    path = save_weights(create_model("osnet_x0_25"), tmp_path / "mine.pth")
    model = create_model("osnet_x0_25")
    report = load_weights(model, path)
    assert not report.sha256_verified and report.known is None
    pre = preprocessing_of(model)
    assert (pre.input_size, pre.mean, pre.std) == ((256, 128), IMAGENET_MEAN, IMAGENET_STD)


def test_a_file_that_is_not_the_expected_known_checkpoint_is_refused(known_tiny, tmp_path):
    path, entry = known_tiny
    other = save_weights(create_model("osnet_x0_25"), tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="osnet_x0_25/tinyset"):
        load_weights(create_model("osnet_x0_25"), other, expect=entry)
    assert load_weights(create_model("osnet_x0_25"), path, expect=entry).known == entry
    # a file under the known name with other bytes is refused whatever its content
    forged = tmp_path / "sub" / "published.pth"
    forged.parent.mkdir()
    forged.write_bytes(other.read_bytes())
    with pytest.raises(WeightsError, match="published.pth.*sha256"):
        load_weights(create_model("osnet_x0_25"), forged)


def test_the_extractor_takes_size_and_normalisation_from_known_weights(known_tiny):
    import numpy as np

    from omnireid.inference import FeatureExtractor
    from omnireid.inference.preprocess import preprocess

    path, entry = known_tiny
    fe = FeatureExtractor("osnet_x0_25", weights=path, backend="eager", normalize=False)
    assert fe.size == (64, 32) and fe.mean == (0.5, 0.5, 0.5) and fe.std == (0.25, 0.25, 0.25)
    crop = np.random.default_rng(0).integers(0, 256, (80, 40, 3), dtype=np.uint8)
    from PIL import Image

    x = preprocess(Image.fromarray(crop), (64, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    with torch.no_grad():
        expected = fe.model(x[None]).embedding.numpy()
    np.testing.assert_allclose(fe([crop]), expected, atol=1e-5)  # same math, one forward each
    # the caller's choice wins
    assert FeatureExtractor("osnet_x0_25", weights=path, backend="eager", size=(32, 16)).size == (32, 16)
