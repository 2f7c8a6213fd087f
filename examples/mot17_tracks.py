"""Track embeddings on real MOT17 frames: how well OSNet tells the tracks of a sequence apart.

For every sequence of a MOTChallenge folder (ground-truth boxes and track ids), this embeds every
pedestrian box of every frame present and prints, per sequence:

* **consistency**: share of tracks whose embedding in their first frame is closer to the same
  track in their last frame than to any other track there
  (:func:`omnireid.evaluation.association.track_consistency`);
* **closed-set accuracy**: a gallery is built from the first frame (one entry per track, labelled
  with its id); every such track, aggregated over the *later* frames by a
  :class:`omnireid.inference.tracks.TrackBank`, is assigned to its nearest identity;
* **open-set** (with ``--threshold`` or ``--calibration``): the same, but a track farther than the
  threshold is "new"; tracks absent from the first frame should come out new;
* **track to track**: the frames are cut in two halves, each half aggregated by its own
  :class:`~omnireid.inference.tracks.TrackBank`, and the tracks of the first half are linked
  one-to-one to those of the second (:meth:`TrackBank.match_tracks`, nearest pairs first), as a
  tracker re-linking tracks after a break, or two cameras agreeing on global ids would. Counted:
  tracks present in both halves linked to themselves, and wrong links (with no threshold, and
  with ``--threshold``/``--calibration``).

Run::

    python examples/mot17_tracks.py /path/to/mot17_mini --weights osnet_x0_25_msmt17.pth \\
        --model osnet_x0_25 --calibration osnet_x0_25_msmt17.pth.calibration.json

The frames are read with PIL and handed over in BGR order, as a tracker using OpenCV would.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def read_bgr(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.ascontiguousarray(np.asarray(img.convert("RGB"))[:, :, ::-1])


def evaluate_sequence(extractor: Any, sequence: Any, threshold: float | None = None,
                      aggregate: str = "mean", use_visibility: bool = True) -> dict[str, Any]:
    """Embed one :class:`omnireid.data.mot.MotSequence` and measure it (see the module text).

    Returns a dict with the counts and rates, and ``detections``: ``(frames, track_ids,
    embeddings)`` of every box, for further checks.
    """
    from omnireid.evaluation.association import track_consistency
    from omnireid.inference.gallery import Gallery
    from omnireid.inference.tracks import BoxEmbedder, TrackBank

    embedder = BoxEmbedder(extractor, bgr=True)
    bank = TrackBank(extractor, aggregate=aggregate)
    first, later = sequence.frames[0], sequence.frames[1:]
    start = time.perf_counter()
    frames, tids, embs, quals = [], [], [], []
    first_emb = embedder(read_bgr(first.image), first.boxes)
    frames.append(np.full(len(first.track_ids), first.index))
    tids.append(first.track_ids)
    embs.append(first_emb)
    quals.append(first.visibility if use_visibility else np.ones(len(first.track_ids)))
    for f in later:
        quality = f.visibility if use_visibility else None
        emb = bank.update(read_bgr(f.image), f.boxes, f.track_ids.tolist(), quality=quality,
                          frame_index=f.index, bgr=True)
        frames.append(np.full(len(f.track_ids), f.index))
        tids.append(f.track_ids)
        embs.append(emb)
        quals.append(quality if quality is not None else np.ones(len(f.track_ids)))
    seconds = time.perf_counter() - start
    frames_a, tids_a, embs_a = np.concatenate(frames), np.concatenate(tids), np.concatenate(embs)
    consistency = track_consistency(frames_a, tids_a, embs_a)

    gallery = Gallery.for_extractor(extractor, faiss_min_size=None)
    gallery.add(first_emb, [str(t) for t in first.track_ids],
                metadata=[{"sequence": sequence.name, "frame": first.index}] * len(first_emb))
    in_first = {int(t) for t in first.track_ids}
    closed = bank.match_gallery(gallery, threshold=math.inf)
    known = [t for t in closed if t in in_first]
    closed_correct = sum(closed[t].label == str(t) for t in known)
    out = {"sequence": sequence.name, "frames": len(sequence.frames),
           "tracks": len(sequence.track_ids), "boxes": int(len(tids_a)), "seconds": seconds,
           "consistency": consistency, "closed_correct": closed_correct,
           "closed_total": len(known), "detections": (frames_a, tids_a, embs_a)}
    out["links"] = link_halves(extractor, frames_a, tids_a, embs_a, np.concatenate(quals),
                               aggregate, math.inf)
    if threshold is not None:
        out["open_links"] = link_halves(extractor, frames_a, tids_a, embs_a,
                                        np.concatenate(quals), aggregate, threshold)
        opened = bank.match_gallery(gallery, threshold=threshold)
        new = [t for t in opened if t not in in_first]
        out.update({
            "open_known_correct": sum(opened[t].label == str(t) for t in known),
            "open_new_correct": sum(opened[t].new for t in new),
            "open_new_total": len(new), "threshold": threshold,
        })
    return out


def link_halves(extractor: Any, frames: np.ndarray, tids: np.ndarray, embs: np.ndarray,
                quality: np.ndarray, aggregate: str, threshold: float) -> dict[str, int]:
    """Aggregate the first and the second half of the frames into two track banks and link
    their tracks one-to-one (:meth:`TrackBank.match_tracks`). Returns ``right`` (tracks of both
    halves linked to themselves), ``wrong`` (links between different tracks) and ``shared``
    (tracks present in both halves)."""
    from omnireid.inference.tracks import TrackBank

    order = np.unique(frames)
    cut = order[len(order) // 2]
    banks = (TrackBank(extractor, aggregate=aggregate), TrackBank(extractor, aggregate=aggregate))
    for f in order:
        bank = banks[int(f >= cut)]
        for i in np.flatnonzero(frames == f):
            bank.observe(int(tids[i]), embs[i], float(quality[i]), frame_index=int(f))
    matches = banks[0].match_tracks(banks[1], threshold=threshold)
    shared = set(banks[0].embeddings()[0]) & set(banks[1].embeddings()[0])
    right = sum(m.a == m.b for m in matches)
    return {"right": right, "wrong": len(matches) - right, "shared": len(shared)}


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f} ({a}/{b})" if b else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("OMNIREID_COMPAT_DIR", ".")) / "mot17_mini"
    parser.add_argument("mot", nargs="?", default=str(default), help="folder of sequences")
    parser.add_argument("--model", default="osnet_x0_25")
    parser.add_argument("--weights", required=True)
    parser.add_argument("--threshold", type=float, help="same-person cosine-distance threshold")
    parser.add_argument("--calibration", help="calibration file (its threshold)")
    parser.add_argument("--aggregate", default="mean", choices=["mean", "ema"])
    parser.add_argument("--no-visibility", action="store_true",
                        help="do not weigh detections by their visibility")
    parser.add_argument("--backend", default="fused")
    args = parser.parse_args(argv)

    from omnireid.cli.util import print_table
    from omnireid.data.mot import find_mot_sequences, read_mot_sequence
    from omnireid.inference import FeatureExtractor
    from omnireid.inference.verify import Calibration

    extractor = FeatureExtractor(args.model, weights=args.weights, backend=args.backend)
    threshold = args.threshold
    if threshold is None and args.calibration:
        cal = Calibration.load(args.calibration)
        threshold = cal.threshold
        print(f"threshold {threshold:.4f} from {args.calibration} (FPR {cal.target_fpr:g} on "
              f"{cal.data.get('source')})")
    rows, total = [], {"pass": 0, "elig": 0, "cc": 0, "ct": 0, "kc": 0, "nc": 0, "nt": 0,
                       "lr": 0, "lw": 0, "ls": 0, "or": 0, "ow": 0}
    for folder in find_mot_sequences(args.mot):
        r = evaluate_sequence(extractor, read_mot_sequence(folder), threshold, args.aggregate,
                              not args.no_visibility)
        c = r["consistency"]
        total["pass"] += c.passed
        total["elig"] += c.eligible
        total["cc"] += r["closed_correct"]
        total["ct"] += r["closed_total"]
        links = r["links"]
        total["lr"] += links["right"]
        total["lw"] += links["wrong"]
        total["ls"] += links["shared"]
        row = [r["sequence"], r["frames"], r["tracks"], r["boxes"], _pct(c.passed, c.eligible),
               f"{100 * c.pair_rate:.1f}", _pct(r["closed_correct"], r["closed_total"]),
               f"{_pct(links['right'], links['shared'])}, {links['wrong']} wrong"]
        if threshold is not None:
            total["kc"] += r["open_known_correct"]
            total["nc"] += r["open_new_correct"]
            total["nt"] += r["open_new_total"]
            ol = r["open_links"]
            total["or"] += ol["right"]
            total["ow"] += ol["wrong"]
            row += [_pct(r["open_known_correct"], r["closed_total"]),
                    _pct(r["open_new_correct"], r["open_new_total"]),
                    f"{_pct(ol['right'], ol['shared'])}, {ol['wrong']} wrong"]
        rows.append(row)
    headers = ["sequence", "frames", "tracks", "boxes", "consistency %", "pairs %",
               "closed-set %", "halves linked %"]
    if threshold is not None:
        headers += ["open: known kept %", "open: new found %", "open: halves linked %"]
    summary = ["all", "", "", "", _pct(total["pass"], total["elig"]), "",
               _pct(total["cc"], total["ct"]), f"{_pct(total['lr'], total['ls'])}, "
               f"{total['lw']} wrong"]
    if threshold is not None:
        summary += [_pct(total["kc"], total["ct"]), _pct(total["nc"], total["nt"]),
                    f"{_pct(total['or'], total['ls'])}, {total['ow']} wrong"]
    print_table(headers, rows + [summary])
    return 0


if __name__ == "__main__":
    sys.exit(main())
