"""Real MOT17 frames: ground-truth boxes embedded from the frames tell the tracks apart.

Runs the example ``examples/mot17_tracks.py`` (so the documented script is what CI checks) over
the seven sequences of ``mot17_mini`` with osnet_x0_25 trained on MSMT17.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omnireid.data.mot import find_mot_sequences, read_mot_sequence
from omnireid.inference import FeatureExtractor
from omnireid.inference.tracks import BoxEmbedder
from tests.conftest import require_file

pytestmark = pytest.mark.usefixtures("one_thread")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mot17_tracks.py"


def load_example():
    spec = importlib.util.spec_from_file_location("mot17_tracks", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mot(compat_dir):
    root = compat_dir / "mot17_mini"
    require_file(root / "README.md")
    weights = require_file(compat_dir / "weights" / "osnet_x0_25_msmt17.pth")
    fe = FeatureExtractor("osnet_x0_25", weights=weights)
    example = load_example()
    sequences = [read_mot_sequence(p) for p in find_mot_sequences(root)]
    results = [example.evaluate_sequence(fe, s) for s in sequences]
    return {"extractor": fe, "sequences": sequences, "results": results}


def test_reader_finds_the_documented_boxes(mot) -> None:
    seqs = mot["sequences"]
    assert len(seqs) == 7
    # mot17_mini/README.md: 814 pedestrian boxes of 137 tracks, 39 frames
    assert sum(s.num_boxes for s in seqs) == 814
    assert sum(len(s.track_ids) for s in seqs) == 137
    assert sum(len(s.frames) for s in seqs) == 39


def test_at_least_90_percent_of_tracks_are_consistent(mot) -> None:
    passed = eligible = 0
    for r in mot["results"]:
        frames, tids, emb = r["detections"]
        # recomputed here: the first-frame embedding of each track against every box of the
        # track's last frame
        mine = elig = 0
        for t in np.unique(tids):
            rows = np.flatnonzero(tids == t)
            rows = rows[np.argsort(frames[rows])]
            last = np.flatnonzero(frames == frames[rows[-1]])
            if len(rows) < 2 or len(last) < 2:
                continue
            elig += 1
            d = 1.0 - emb[last].astype(np.float64) @ emb[rows[0]].astype(np.float64)
            mine += int(tids[last][np.argmin(d)] == t)
        c = r["consistency"]
        assert (c.passed, c.eligible) == (mine, elig), r["sequence"]
        passed += c.passed
        eligible += c.eligible
        print(f"\n{r['sequence']}: {c.passed}/{c.eligible} tracks consistent "
              f"({100 * c.rate:.1f} %), pairs {100 * c.pair_rate:.1f} %; closed-set "
              f"assignment {r['closed_correct']}/{r['closed_total']}", end="")
    print(f"\nall: {passed}/{eligible} = {100 * passed / eligible:.1f} %")
    assert passed / eligible >= 0.9


def test_assignment_to_a_first_frame_gallery(mot) -> None:
    correct = sum(r["closed_correct"] for r in mot["results"])
    total = sum(r["closed_total"] for r in mot["results"])
    assert total >= 100
    assert correct / total >= 0.8  # a sanity floor; the figures are printed and in the docs


def test_box_embedder_bgr_equals_rgb_embed_boxes(mot) -> None:
    fe = mot["extractor"]
    first = mot["sequences"][0].frames[0]
    with Image.open(first.image) as img:
        rgb = np.asarray(img.convert("RGB"))
    a = BoxEmbedder(fe)(np.ascontiguousarray(rgb[:, :, ::-1]), first.boxes)
    b = fe.embed_boxes(rgb, first.boxes)
    # same crops in the same batch: the channel order is the only difference
    np.testing.assert_allclose(a, b, atol=1e-6)
