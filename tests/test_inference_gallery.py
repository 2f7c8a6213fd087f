"""The living gallery: add/remove/search/assign, exact vs FAISS, atomic pickle-free files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from omnireid.inference.gallery import Gallery, GalleryError
from omnireid.inference.provenance import ModelMismatchError

SRC = Path(__file__).resolve().parents[1] / "src"
RECORD = {"model": "osnet_x0_25", "weights": None, "weights_name": "w.pth",
          "weights_sha256": "ab" * 32, "random_weights": False, "input": [256, 128],
          "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "normalized": True,
          "backend": "fused"}


def clusters(num_ids: int, per_id: int, dim: int = 32, noise: float = 0.15, seed: int = 0):
    """Unit vectors around ``num_ids`` random centres, and fresh queries of the same people."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_ids, dim))
    x = np.repeat(centres, per_id, axis=0) + noise * rng.normal(size=(num_ids * per_id, dim))
    q = centres + noise * rng.normal(size=centres.shape)
    labels = [f"id{i}" for i in range(num_ids) for _ in range(per_id)]
    return x.astype(np.float32), labels, q.astype(np.float32)


def empty(dim: int = 32, **kw) -> Gallery:
    return Gallery(np.zeros((0, dim), np.float32), meta={"model": dict(RECORD)}, **kw)


def test_add_search_remove_assign() -> None:
    x, labels, q = clusters(10, 3)
    g = empty()
    ids = g.add(x, labels, paths=[f"img{i}.jpg" for i in range(30)],
                metadata={"camera": 2})
    assert ids.tolist() == list(range(30)) and len(g) == 30
    assert g.identities() == {f"id{i}": 3 for i in range(10)}
    hits = g.search(q, 3)
    assert [row[0] for row in hits.labels] == [f"id{i}" for i in range(10)]
    assert hits.distances.shape == (10, 3) and (np.diff(hits.distances, axis=1) >= 0).all()
    assert g.entry_meta[int(hits.rows[4, 0])] == {"camera": 2}
    # open set: a stranger is new, a known person is found
    rng = np.random.default_rng(9)
    stranger = rng.normal(size=(1, 32)).astype(np.float32)
    found = g.assign(np.concatenate([q[:2], stranger]), threshold=0.2)
    assert [a.label for a in found] == ["id0", "id1", None]
    assert found[2].new and found[2].nearest_label is not None and found[2].distance > 0.2
    assert found[0].runner_up_label not in (None, "id0")
    # add_new: the stranger gets an identity, and a second look at it in the same call finds it
    again = g.assign(np.concatenate([stranger, stranger * 1.01]), threshold=0.2, add_new=True)
    assert again[0].new and again[0].label == "person-30" and not again[1].new
    assert again[1].label == "person-30" and len(g) == 31
    # remove by identity and by id; unknown ones are errors and change nothing
    assert g.remove(labels=["id3"]) == 3
    assert "id3" not in g.identities()
    assert g.remove(ids=[0, 1]) == 2 and 0 not in g.ids
    with pytest.raises(KeyError, match="no gallery entry with id 999"):
        g.remove(ids=[999])
    with pytest.raises(KeyError, match="'nobody'"):
        g.remove(labels=["nobody"])
    assert len(g) == 26
    assert g.search(q[3:4], 1).labels[0][0] != "id3"
    new_ids = g.add(x[:1], "late")
    assert new_ids.tolist() == [31]  # ids are never reused


def test_unlabelled_entries_are_skipped_by_assign() -> None:
    x, labels, q = clusters(3, 2)
    g = empty()
    g.add(np.repeat(q[:1], 5, axis=0))  # five unlabelled copies of person 0's query
    g.add(x, labels)
    a = g.assign(q[:1], threshold=0.5, k=3)[0]  # the 3 nearest are all unlabelled
    assert a.label == "id0" and not a.new
    with pytest.raises(GalleryError, match="no same-person threshold"):
        g.assign(q[:1])
    g.meta["same_person"] = {"threshold": 0.5, "target_fpr": 1e-3}
    assert g.assign(q[:1])[0].label == "id0"


def test_refuses_bad_embeddings_and_shapes() -> None:
    g = empty()
    with pytest.raises(GalleryError, match="NaN or infinity.*bad.jpg"):
        g.add(np.full((1, 32), np.nan, np.float32), paths=["bad.jpg"])
    with pytest.raises(GalleryError, match="1 embedding.s. are all zeros .e.g. z.jpg"):
        g.add(np.r_[np.ones((1, 32)), np.zeros((1, 32))], paths=["o.jpg", "z.jpg"])
    with pytest.raises(GalleryError, match="shape"):
        g.add(np.zeros((2, 16), np.float32))
    with pytest.raises(GalleryError, match="2 embeddings but 3 labels"):
        g.add(np.ones((2, 32), np.float32), ["a", "b", "c"])
    assert len(g) == 0


def test_faiss_when_large_matches_exact_and_updates_incrementally() -> None:
    pytest.importorskip("faiss")
    x, labels, q = clusters(400, 5, seed=1)
    exact = empty(faiss_min_size=None)
    exact.add(x, labels)
    big = empty(faiss_min_size=1000)
    big.add(x[:500], labels[:500])
    assert big.index_kind == "exact"
    big.add(x[500:], labels[500:])
    assert big.index_kind == "faiss-ivf"
    h_exact, h_big = exact.search(q, 5), big.search(q, 5)
    trained = big._faiss
    assert trained is not None and trained.ntotal == 2000
    agree = (h_exact.ids[:, 0] == h_big.ids[:, 0]).mean()
    assert agree >= 0.99  # IVF visits 16 of its cells; the clusters are tight
    # incremental: new entries are found, removed ones never come back; no retraining
    extra, _, q2 = clusters(5, 2, seed=7)
    new_ids = big.add(extra, [f"new{i // 2}" for i in range(10)])
    assert big._faiss is trained and trained.ntotal == 2010
    assert set(big.search(q2, 1).labels[i][0] for i in range(5)) == {f"new{i}" for i in range(5)}
    big.remove(labels=["new0"])
    assert trained.ntotal == 2008
    assert not set(big.search(q2, 10).ids.ravel()) & set(new_ids[:2].tolist())
    np.testing.assert_array_equal(big.rows_of(big.search(q, 3).ids[:, 0]),
                                  big.search(q, 3).rows[:, 0])


def test_save_load_round_trip(tmp_path) -> None:
    x, labels, q = clusters(6, 3)
    g = empty()
    g.add(x, labels, paths=[f"a/{i}.jpg" for i in range(18)],
          metadata=[{"camera": i % 2, "time": f"t{i}"} for i in range(18)])
    g.remove(ids=[4])
    g.meta["same_person"] = {"threshold": 0.3, "target_fpr": 0.001}
    path = g.save(tmp_path / "g.npz")
    h = Gallery.load(path)
    np.testing.assert_array_equal(h.embeddings, g.embeddings)
    np.testing.assert_array_equal(h.ids, g.ids)
    assert (h.labels, h.paths, h.entry_meta) == (g.labels, g.paths, g.entry_meta)
    assert h.meta == g.meta and h.next_id == g.next_id == 18
    np.testing.assert_array_equal(h.search(q, 4).ids, g.search(q, 4).ids)
    with np.load(path, allow_pickle=False) as data:  # readable without unpickling anything
        assert set(data.files) >= {"header", "embeddings", "ids", "labels"}
    assert not list(tmp_path.glob(".*tmp"))


def test_faiss_index_is_saved_with_the_gallery(tmp_path) -> None:
    pytest.importorskip("faiss")
    x, labels, q = clusters(300, 4, seed=2)
    g = empty(faiss_min_size=500)
    g.add(x[:800], labels[:800])
    g.search(q, 1)  # trains on 800 entries
    g.add(x[800:], labels[800:])  # incremental
    before = g.search(q, 5)
    h = Gallery.load(g.save(tmp_path / "big.npz"), faiss_min_size=500)
    assert h._faiss is not None and h._faiss_trained_size == 800
    after = h.search(q, 5)
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_array_equal(after.distances, before.distances)


def test_corrupt_truncated_and_altered_files(tmp_path) -> None:
    x, labels, _ = clusters(4, 2)
    g = empty()
    g.add(x, labels)
    path = g.save(tmp_path / "g.npz")
    data = path.read_bytes()
    short = tmp_path / "short.npz"
    short.write_bytes(data[: len(data) // 2])
    with pytest.raises(GalleryError, match=f"{short}.*truncated or corrupt"):
        Gallery.load(short)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"hello")
    with pytest.raises(GalleryError, match=str(garbage)):
        Gallery.load(garbage)
    with pytest.raises(FileNotFoundError, match="gallery file not found"):
        Gallery.load(tmp_path / "nope.npz")
    # an entry edited behind the gallery's back: the checksum no longer matches
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["labels"] = np.array(["x"] + list(arrays["labels"][1:]))
    altered = tmp_path / "altered.npz"
    np.savez(altered, **arrays)
    with pytest.raises(GalleryError, match="does not match its checksum"):
        Gallery.load(altered)
    # non-finite embeddings written by something else are refused on load
    g.embeddings[1, 0] = np.inf
    bad = g.save(tmp_path / "inf.npz")
    with pytest.raises(GalleryError, match=f"{bad}.*NaN or infinity"):
        Gallery.load(bad)


def test_model_checks() -> None:
    g = empty()
    g.check_model(dict(RECORD))
    other = dict(RECORD, weights_sha256="cd" * 32)
    with pytest.raises(ModelMismatchError, match="checkpoint"):
        g.check_model(other, "gallery g.npz")
    with pytest.raises(ModelMismatchError, match="input size"):
        g.check_model(dict(RECORD, input=[128, 64]))
    rnd = Gallery(np.zeros((0, 32)), meta={"model": dict(RECORD, random_weights=True,
                                                         weights_sha256=None)})
    with pytest.raises(ModelMismatchError, match="random weights"):
        rnd.check_model(dict(RECORD, random_weights=True, weights_sha256=None))
    rnd.check_model(dict(RECORD, random_weights=True, weights_sha256=None), allow_random=True)


def test_random_weight_gallery_refused_on_load(tmp_path) -> None:
    g = Gallery(np.ones((1, 4)), meta={"model": dict(RECORD, random_weights=True,
                                                     weights_sha256=None)})
    path = g.save(tmp_path / "r.npz")
    with pytest.raises(GalleryError, match="random weights"):
        Gallery.load(path)
    assert len(Gallery.load(path, allow_random=True)) == 1


def test_legacy_extract_file_still_loads(tmp_path) -> None:
    path = tmp_path / "old.npz"
    meta = {"model": "osnet_x0_25", "weights": None, "input": [64, 32], "normalized": True,
            "source": "crops", "failed": []}
    np.savez(path, embeddings=np.eye(3, 8, dtype=np.float32), paths=np.array(["a", "b", "c"]),
             root=np.array(str(tmp_path)), meta=np.array(json.dumps(meta)))
    with pytest.raises(GalleryError, match="random weights"):
        Gallery.load(path)
    g = Gallery.load(path, allow_random=True)
    assert g.paths == ["a", "b", "c"] and g.model["input"] == [64, 32]
    assert g.model["legacy"] and g.meta["source"] == "crops" and g.labels == ["", "", ""]


KILLED_WRITER = """
import json, os, signal, sys
import numpy as np
sys.path.insert(0, {src!r})
from omnireid.inference.gallery import Gallery
from tests_record import RECORD, clusters
x, labels, q = clusters(50, 4, seed=5)
g = Gallery(np.zeros((0, 32), np.float32), meta={{"model": RECORD}}, faiss_min_size={fmin})
g.add(x[:150], labels[:150], paths=[f"p{{i}}" for i in range(150)])
g.search(q, 1)
g.add(x[150:], labels[150:], metadata={{"camera": 1}})
g.remove(labels=["id7"])
g.save({path!r})
hits = g.search(q, 5)
json.dump({{"ids": hits.ids.tolist(), "d": hits.distances.tolist(), "labels": hits.labels}},
          open({out!r}, "w"))
# start saving a bigger gallery and die half-way through writing it
g.add(np.ones((5000, 32), np.float32), "filler")
real = np.savez
def dying(fh, **arrays):
    real(fh, **{{k: v for k, v in list(arrays.items())[:2]}})
    fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)
np.savez = dying
g.save({path!r})
"""


@pytest.mark.parametrize("fmin", [None, 100])
def test_save_survives_a_killed_process(tmp_path, fmin) -> None:
    if fmin is not None:
        pytest.importorskip("faiss")
    helper = tmp_path / "tests_record.py"
    helper.write_text("import numpy as np\n" + f"RECORD = {RECORD!r}\n"
                      + textwrap.dedent(__import__("inspect").getsource(clusters)))
    path, out = tmp_path / "g.npz", tmp_path / "hits.json"
    script = KILLED_WRITER.format(src=str(SRC), path=str(path), out=str(out), fmin=fmin)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{SRC}"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert list(tmp_path.glob(".g.npz.*.tmp*"))  # the interrupted save left its temporary file
    g = Gallery.load(path, faiss_min_size=fmin)  # ... and the previous gallery intact
    assert len(g) == 196 and "filler" not in g.identities()
    assert (g._faiss is not None) == (fmin is not None)
    saved = json.loads(out.read_text())
    _, _, q = clusters(50, 4, seed=5)
    hits = g.search(q, 5)
    assert hits.ids.tolist() == saved["ids"] and hits.labels == saved["labels"]
    # the other process computed the same product; BLAS may order its sums differently there
    np.testing.assert_allclose(hits.distances, np.array(saved["d"], np.float32), atol=1e-6)
