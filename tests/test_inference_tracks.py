"""Track aggregates, track matching, the tracker adapter, the MOT reader and consistency."""

from __future__ import annotations

import numpy as np
import pytest

from omnireid.data.mot import read_mot_sequence
from omnireid.evaluation.association import track_consistency
from omnireid.inference.gallery import Gallery
from omnireid.inference.tracks import BoxEmbedder, TrackBank, greedy_matches


class ColourExtractor:
    """Stands in for a FeatureExtractor: a box's embedding is its mean colour plus its left
    edge, so tests know every embedding exactly. Counts calls to check batching."""

    feature_dim = 4
    model_name, weights, size = "fake", "w.pth", (8, 4)
    mean, std, normalize, backend = (0.0,) * 3, (1.0,) * 3, True, "fused"

    def __init__(self) -> None:
        self.calls = []

    def embed_boxes(self, frame, boxes, bgr=False):
        self.calls.append((len(boxes), bgr))
        out = []
        for x1, y1, x2, y2 in np.asarray(boxes):
            crop = np.asarray(frame)[int(y1):int(y2), int(x1):int(x2)].reshape(-1, 3)
            out.append([*crop.mean(0), x1])
        return np.asarray(out, np.float32).reshape(-1, 4)


def unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def frame_with(colours):
    """A 10 x (10 * len) frame whose column block i has colour i."""
    f = np.zeros((10, 10 * len(colours), 3), np.uint8)
    for i, c in enumerate(colours):
        f[:, 10 * i:10 * i + 10] = c
    return f


BOXES2 = [[0, 0, 10, 10], [10, 0, 20, 10]]


def test_mean_and_ema_aggregates_by_hand() -> None:
    ex = ColourExtractor()
    mean = TrackBank(ex, "mean")
    ema = TrackBank(ex, "ema", momentum=0.5)
    f1, f2 = frame_with([(200, 0, 0), (0, 200, 0)]), frame_with([(0, 0, 200), (0, 200, 0)])
    e1 = mean.update(f1, BOXES2, [7, 8], quality=[1.0, 1.0])
    ema.update(f1, BOXES2, [7, 8])
    e2 = mean.update(f2, BOXES2, [7, 8], quality=[0.5, 0.0])
    ema.update(f2, BOXES2, [7, 8], quality=[0.5, 0.0])
    assert ex.calls == [(2, False)] * 4  # one batch per frame
    np.testing.assert_allclose(e1[0], unit([200, 0, 0, 0]), atol=1e-6)
    # mean: quality-weighted mean of the normalised embeddings, renormalised
    np.testing.assert_allclose(mean.tracks[7].embedding,
                               unit(unit([200, 0, 0, 0]) + 0.5 * unit([0, 0, 200, 0])), atol=1e-6)
    # ema: w = (1 - 0.5) * 0.5 = 0.25 on the new detection
    np.testing.assert_allclose(ema.tracks[7].embedding,
                               unit(0.75 * unit([200, 0, 0, 0]) + 0.25 * unit([0, 0, 200, 0])),
                               atol=1e-6)
    # quality 0 counts the detection but leaves the aggregate
    np.testing.assert_allclose(mean.tracks[8].embedding, e2[1], atol=1e-6)
    assert mean.tracks[8].count == 2 and mean.tracks[8].weight == 1.0
    assert (mean.tracks[7].first_frame, mean.tracks[7].last_frame) == (0, 1)
    ids, emb = mean.embeddings()
    assert ids == [7, 8] and emb.shape == (2, 4)


def test_update_checks_and_forgetting() -> None:
    bank = TrackBank(ColourExtractor(), max_age=1)
    f = frame_with([(10, 20, 30), (40, 50, 60)])
    with pytest.raises(ValueError, match="2 boxes but 1 track ids"):
        bank.update(f, BOXES2, [1])
    with pytest.raises(ValueError, match="twice"):
        bank.update(f, BOXES2, [1, 1])
    with pytest.raises(ValueError, match="quality"):
        bank.update(f, BOXES2, [1, 2], quality=[1.0, 2.0])
    bank.update(f, BOXES2, [1, 2])
    bank.update(f, BOXES2[:1], [1])
    assert set(bank.tracks) == {1, 2}
    assert bank.update(f, [], []).shape[0] == 0
    assert set(bank.tracks) == {1}  # track 2 unseen for 2 frames
    with pytest.raises(ValueError, match="aggregate"):
        TrackBank(ColourExtractor(), "median")


def test_match_tracks_one_to_one() -> None:
    ex = ColourExtractor()
    cam_a, cam_b = TrackBank(ex), TrackBank(ex)
    cam_a.update(frame_with([(200, 0, 0), (0, 200, 0), (0, 0, 200)]),
                 BOXES2 + [[20, 0, 30, 10]], ["a1", "a2", "a3"])
    cam_b.update(frame_with([(0, 190, 10), (210, 5, 0)]), BOXES2, ["b1", "b2"])
    # left edges differ (0/10/20), so the embeddings are close, not equal
    matches = cam_a.match_tracks(cam_b, threshold=0.2)
    assert {(m.a, m.b) for m in matches} == {("a1", "b2"), ("a2", "b1")}
    assert cam_a.match_tracks(cam_b, threshold=1e-9) == []
    dist = np.array([[0.1, 0.2], [0.15, 0.3]])
    got = greedy_matches(dist, ["x", "y"], ["u", "v"], 0.25)
    assert [(m.a, m.b) for m in got] == [("x", "u")]  # y-u taken, y-v too far
    same = greedy_matches(np.array([[np.inf, 0.1, 0.2], [np.inf, np.inf, 0.05],
                                    [np.inf] * 3]), ids := ["p", "q", "r"], ids, 0.5)
    assert [(m.a, m.b) for m in same] == [("q", "r")]  # then p-q and p-r reuse q or r


def test_match_gallery_uses_whole_tracks(monkeypatch) -> None:
    ex = ColourExtractor()
    record = {"model": "fake", "weights_sha256": None, "random_weights": False,
              "input": [8, 4], "mean": [0.0] * 3, "std": [1.0] * 3}
    from omnireid.inference import provenance

    gallery = Gallery(np.zeros((0, 4)), meta={"model": record})
    gallery.add(np.array([[1, 0, 0, 0], [0, 1, 0, 0]], np.float32), ["red", "green"])
    bank = TrackBank(ex)
    bank.update(frame_with([(200, 0, 0), (0, 0, 200)]), BOXES2, [1, 2])
    monkeypatch.setattr(provenance, "weights_digest", lambda p: None)  # no checkpoint file
    result = bank.match_gallery(gallery, threshold=0.1)
    assert result[1].label == "red" and result[2].new


def test_box_embedder_is_a_tracker_callable() -> None:
    ex = ColourExtractor()
    emb = BoxEmbedder(ex)
    f = frame_with([(1, 2, 3), (4, 5, 6)])
    dets = np.array([[0, 0, 10, 10, 0.9, 0], [10, 0, 20, 10, 0.8, 0]])  # x1 y1 x2 y2 conf cls
    a = emb(f, dets)
    b = emb.get_features(dets, f)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 4) and ex.calls[-1] == (2, True)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="x1, y1, x2, y2"):
        emb(f, np.zeros((1, 3)))


def test_track_consistency_by_hand() -> None:
    e = np.eye(4)
    frames = np.array([0, 0, 0, 1, 1, 1, 2])
    tids = np.array([1, 2, 3, 1, 2, 3, 4])
    emb = np.stack([e[0], e[1], e[2], e[0] + 0.1 * e[1], e[2] + 0.1 * e[1], e[1], e[3]])
    r = track_consistency(frames, tids, emb)
    # track 1 passes; track 2 looks like track 3 in frame 1 and fails; track 3 likewise;
    # track 4 is seen once
    assert (r.passed, r.eligible, r.single_frame, r.failures) == (1, 3, 1, [2, 3])
    assert r.pair_total == 6 and r.pair_passed == 2
    with pytest.raises(ValueError, match="twice"):
        track_consistency(np.array([0, 0]), np.array([1, 1]), np.eye(2))


def test_mot_reader(tmp_path) -> None:
    seq = tmp_path / "MOT17-99-X"
    (seq / "img1").mkdir(parents=True)
    (seq / "gt").mkdir()
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=MOT17-99-X\nimDir=img1\nframeRate=25\n"
                                     "imWidth=100\nimHeight=50\nimExt=.jpg\n")
    for i in (1, 2):
        (seq / "img1" / f"{i:06d}.jpg").write_bytes(b"")
    (seq / "gt" / "gt.txt").write_text(
        "1,3,11,6,20,40,1,1,0.5\n"      # pedestrian: x1=10, y1=5
        "1,4,1,1,5,5,0,1,1.0\n"         # consider=0
        "2,3,12,6,20,40,1,1,0.75\n"
        "2,5,1,1,5,5,1,7,1.0\n"         # static person
        "2,6,500,1,5,5,1,1,1.0\n"       # outside the 100x50 image
        "3,3,13,6,20,40,1,1,1.0\n")     # frame 3 has no image
    s = read_mot_sequence(seq)
    assert s.name == "MOT17-99-X" and s.frame_rate == 25 and [f.index for f in s.frames] == [1, 2]
    np.testing.assert_array_equal(s.frames[0].boxes, [[10, 5, 30, 45]])
    assert s.frames[1].track_ids.tolist() == [3] and s.frames[1].visibility.tolist() == [0.75]
    assert s.num_boxes == 2 and s.track_ids == [3]
    (seq / "gt" / "gt.txt").write_text("1,3,x,6,20,40\n")
    with pytest.raises(ValueError, match="gt.txt:1"):
        read_mot_sequence(seq)
    with pytest.raises(FileNotFoundError, match="seqinfo.ini"):
        read_mot_sequence(tmp_path)
