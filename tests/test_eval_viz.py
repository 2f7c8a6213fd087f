"""Ranked-list pictures and the HTML report."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from omnireid.viz import ReportSection, draw_ranked_list, save_ranked_lists, write_report
from omnireid.viz.ranked import BORDER, GAP, GREEN, QUERY_BLUE, QUERY_GAP, RED


@pytest.fixture()
def images(tmp_path):
    paths = []
    for k in range(6):
        path = tmp_path / f"img{k}.png"
        Image.new("RGB", (20, 40), (10 * k, 0, 0)).save(path)
        paths.append(str(path))
    return paths


def test_picture_frames_true_matches_green_and_false_red(images):
    img = draw_ranked_list(images[0], images[1:4], [True, False, True], size=(40, 20))
    cell = 20 + 2 * BORDER
    assert img.size == (cell + QUERY_GAP + 3 * (cell + GAP) + GAP, img.size[1])
    y = GAP + 1  # inside the top border
    assert img.getpixel((GAP + 1, y)) == QUERY_BLUE
    first = GAP + cell + QUERY_GAP
    colours = [img.getpixel((first + k * (cell + GAP) + 1, y)) for k in range(3)]
    assert colours == [GREEN, RED, GREEN]
    # the thumbnail itself is pasted inside the frame
    assert img.getpixel((first + BORDER + 5, GAP + BORDER + 5)) == (10, 0, 0)


def test_worst_queries_first_and_removed_images_left_out(images, tmp_path):
    # 3 queries over a 4-image gallery; per-query AP decides the order of the pictures
    distmat = np.array([[0.1, 0.2, 0.3, 0.4]] * 3, np.float32)
    q_pids, g_pids = np.array([1, 2, 3]), np.array([1, 2, 1, 3])
    removed = [np.array([0]), np.array([], int), np.array([], int)]
    ap = np.array([0.9, 0.2, np.nan])  # query 2 was skipped: not drawn
    pics = save_ranked_lists(distmat, images[:3], images[2:6], q_pids, g_pids, removed, ap,
                             tmp_path / "out", topk=3, num_queries=5)
    assert [p.query_index for p in pics] == [1, 0]
    assert [p.path.name for p in pics] == ["001_query00001.png", "002_query00000.png"]
    assert all(p.path.is_file() for p in pics)
    # query 0: gallery image 0 removed -> ranked list starts at image 1 (id 2: false)
    assert pics[1].matches == [False, True, False]
    assert pics[0].matches == [False, True, False]


def test_report_page_lists_targets_and_pictures(tmp_path):
    sections = [
        ReportSection("market1501", {"rank1": 0.5, "mAP": 0.25, "mINP": 0.1},
                      [("ranked/a.png", "query <1>")]),
        ReportSection("dukemtmcreid", {"rank1": 0.75, "mAP": 0.5, "mINP": 0.2}),
    ]
    path = write_report(tmp_path / "rep", "Eval & more", sections, settings={"dist": "cosine"})
    text = path.read_text()
    assert path.name == "index.html" and not (tmp_path / "rep" / "index.html.tmp").exists()
    assert "Eval &amp; more" in text and "query &lt;1&gt;" in text
    assert "<img src='ranked/a.png'" in text
    assert "Summary" in text  # cross-domain table with two targets
    assert "<td>50.00</td>" in text and "<td>75.00</td>" in text
