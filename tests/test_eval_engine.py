"""The one evaluation path (omnireid.engine.evaluate.evaluate) against an independent run of the
same steps: a plain extraction loop, distances, and the NumPy reference evaluator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from omnireid.data.records import ReIDDataset, Sample
from omnireid.engine.evaluate import evaluate
from omnireid.errors import DataError, ImageError, UsageError
from omnireid.evaluation import compute_distance_matrix, evaluate_rank_reference
from omnireid.evaluation.distances import l2_normalize
from omnireid.evaluation.rerank import re_ranking_features
from omnireid.inference import FeatureExtractor
from omnireid.models import create_model

from ._inference_helpers import plain_features

SIZE = (64, 32)
# the evaluated features and the plain loop's come from the same model on the same batches of
# the same images; only the batch composition differs, which moves float32 convolution sums by
# ~1e-6; metrics on these few well-separated queries do not move at all, distances by < 1e-4
ATOL = 1e-4


def _person(pid: int, k: int) -> Image.Image:
    rng = np.random.default_rng(pid * 100 + k)
    base = np.array([(37 * pid) % 255, (91 * pid) % 255, (53 * pid) % 255], np.float64)
    return Image.fromarray(np.clip(base + rng.normal(0, 30, (64, 32, 3)), 0, 255).astype(np.uint8))


def _split(root: Path, seed: int, cameras: bool = True) -> ReIDDataset:
    """5 identities; queries on camera 0, gallery on cameras 0 and 1 (the same-camera image of
    each identity is what the Market protocol leaves out)."""
    rng = np.random.default_rng(seed)
    query, gallery = [], []
    for pid in rng.permutation(8)[:5]:
        for k, cam, part in ((0, 0, query), (1, 0, gallery), (2, 1, gallery), (3, 1, gallery)):
            path = root / f"s{seed}_{pid}_{k}.png"
            _person(int(pid), k).save(path)
            part.append(Sample(str(path), int(pid), cam if cameras else -1))
    if not cameras:  # the query images are also in the gallery: the protocol must leave them out
        gallery = gallery + query
    return ReIDDataset(f"split{seed}", [], query, gallery, cameras, {})


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("osnet_x0_25").eval()


def _reference(model, ds: ReIDDataset, protocol: str = "market", flip: bool = False,
               rerank: bool = False, metric: str = "euclidean", normalize: bool = False):
    def feats(samples):
        paths = [s.path for s in samples]
        f = plain_features(model, paths, SIZE)
        if flip:
            mirrored = [Image.open(p).transpose(Image.FLIP_LEFT_RIGHT) for p in paths]
            tmp = [Path(p).with_suffix(".mirror.png") for p in paths]
            for img, t in zip(mirrored, tmp):
                img.save(t)
            f = (f + plain_features(model, [str(t) for t in tmp], SIZE)) / 2
        return l2_normalize(f) if normalize else f

    qf, gf = feats(ds.query), feats(ds.gallery)
    d = re_ranking_features(qf, gf, metric) if rerank else compute_distance_matrix(qf, gf, metric)
    q_pids = np.array([s.pid for s in ds.query])
    g_pids = np.array([s.pid for s in ds.gallery])
    if protocol == "no_camera":
        where = {s.path: i for i, s in enumerate(ds.gallery)}
        qgi = np.array([where.get(s.path, -1) for s in ds.query])
        return d, evaluate_rank_reference(d, q_pids, g_pids, None, None, protocol="no_camera",
                                          query_gallery_index=qgi)
    q_cams = np.array([s.camid for s in ds.query])
    g_cams = np.array([s.camid for s in ds.gallery])
    return d, evaluate_rank_reference(d, q_pids, g_pids, q_cams, g_cams)


def test_market_protocol_matches_the_reference(model, tmp_path):
    ds = _split(tmp_path, 0)
    ev = evaluate(model, ds, size=SIZE, batch_size=3, keep_distmat=True)
    d, ref = _reference(model, ds)
    np.testing.assert_allclose(ev.distmat, d, atol=ATOL)
    assert ev.protocol == "market" and ev.metrics["num_valid_queries"] == 5
    assert ev.metrics["mAP"] == pytest.approx(ref.mAP, abs=1e-6)
    assert ev.metrics["rank1"] == pytest.approx(ref.rank(1), abs=1e-6)
    # the pictures' grey-out: each query's same-camera image of its identity
    removed = ev.removed()
    assert [len(r) for r in removed] == [1] * 5
    assert all(ev.gallery[r[0]].pid == q.pid and ev.gallery[r[0]].camid == q.camid
               for r, q in zip(removed, ev.query))


def test_flip_rerank_cosine_normalise_match_the_reference(model, tmp_path):
    ds = _split(tmp_path, 1)
    ev = evaluate(model, ds, size=SIZE, flip=True, rerank=True, dist_metric="cosine",
                  normalize_feature=True, keep_distmat=True)
    d, ref = _reference(model, ds, flip=True, rerank=True, metric="cosine", normalize=True)
    np.testing.assert_allclose(ev.distmat, d, atol=ATOL)
    assert ev.metrics["mAP"] == pytest.approx(ref.mAP, abs=1e-6)
    plain = evaluate(model, ds, size=SIZE, keep_distmat=True)
    assert np.abs(plain.distmat - ev.distmat).max() > 1e-3  # the options changed something


def test_data_without_cameras_leaves_each_query_out_of_its_gallery(model, tmp_path):
    ds = _split(tmp_path, 2, cameras=False)
    ev = evaluate(model, ds, size=SIZE)
    _, ref = _reference(model, ds, protocol="no_camera")
    assert ev.protocol == "no_camera"
    assert ev.metrics["mAP"] == pytest.approx(ref.mAP, abs=1e-6)
    assert [int(i) for i in ev.query_gallery_index] == list(range(15, 20))
    with pytest.raises(UsageError, match="no camera ids"):
        evaluate(model, ds, size=SIZE, protocol="market")


def test_splits_are_averaged(model, tmp_path):
    a, b = _split(tmp_path, 3), _split(tmp_path, 4)
    ev = evaluate(model, a, splits=[b], size=SIZE)
    refs = [_reference(model, s)[1] for s in (a, b)]
    assert ev.num_splits == 2 and ev.metrics["num_splits"] == 2
    assert ev.metrics["mAP"] == pytest.approx(np.mean([r.mAP for r in refs]), abs=1e-6)
    assert ev.metrics["rank1"] == pytest.approx(np.mean([r.rank(1) for r in refs]), abs=1e-6)


def test_unreadable_images_are_skipped_or_raise(model, tmp_path):
    ds = _split(tmp_path, 5)
    broken = ds.gallery[0].path
    Path(broken).write_bytes(b"not an image")
    with pytest.raises(ImageError, match=Path(broken).name):
        evaluate(model, ds, size=SIZE)
    ev = evaluate(model, ds, size=SIZE, on_error="skip")
    assert [b.path for b in ev.skipped] == [broken] and ev.metrics["skipped_images"] == 1
    assert len(ev.gallery) == len(ds.gallery) - 1 and broken not in {s.path for s in ev.gallery}
    kept = ReIDDataset(ds.name, [], ds.query, ds.gallery[1:], True, {})
    assert ev.metrics["mAP"] == pytest.approx(_reference(model, kept)[1].mAP, abs=1e-6)
    for s in ds.query:
        Path(s.path).write_bytes(b"")
    with pytest.raises(DataError, match="0 query"):
        evaluate(model, ds, size=SIZE, on_error="skip")


def test_a_training_model_is_evaluated_in_eval_mode_and_handed_back_training(tmp_path):
    torch.manual_seed(0)
    net = create_model("osnet_x0_25", num_classes=3).train()
    ds = _split(tmp_path, 6)
    ev = evaluate(net, ds, size=SIZE, keep_distmat=True)
    assert net.training
    d, _ = _reference(net, ds)  # plain_features puts it in eval mode
    np.testing.assert_allclose(ev.distmat, d, atol=ATOL)


def test_an_extractor_is_used_as_it_is(model, tmp_path):
    ds = _split(tmp_path, 7)
    fe = FeatureExtractor(model, size=SIZE, backend="eager", normalize=False, batch_size=2)
    a = evaluate(fe, ds, keep_distmat=True)
    b = evaluate(model, ds, size=SIZE, keep_distmat=True)
    np.testing.assert_allclose(a.distmat, b.distmat, atol=ATOL)
