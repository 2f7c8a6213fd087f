"""Open-set assignment on real crops: calibrate on some people, enrol others, assign the rest.

With the CUHK03 camera-pair crops (a CSV manifest ``path,pid,camid``), for each of several
random splits of the identities:

1. half of the identities calibrate the same-person threshold (FPR 1e-2 and 1e-3);
2. of the other half, half are *enrolled*: their camera-0 crops go into a gallery with labels;
3. every camera-1 crop of that other half is assigned (open set): an enrolled person should get
   their own label, a person never enrolled should come out "new".

Prints, per threshold, the mean and spread over the splits. Run::

    python examples/cuhk03_open_set.py /path/to/cuhk03_pair1_val/manifest.csv \\
        --weights osnet_x0_25_msmt17.pth --model osnet_x0_25
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest")
    parser.add_argument("--model", default="osnet_x0_25")
    parser.add_argument("--weights", required=True)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import torch

    from omnireid.cli.util import print_table
    from omnireid.evaluation.verification import pair_distances, verification_report
    from omnireid.inference import FeatureExtractor, Gallery
    from omnireid.inference.verify import load_labelled_set

    torch.set_num_threads(args.threads)
    data = load_labelled_set(args.manifest)
    fe = FeatureExtractor(args.model, weights=args.weights)
    emb = fe(data.paths)
    labels, cams = data.labels.astype(str), data.cameras
    ids = np.unique(labels)
    fprs = (1e-2, 1e-3)
    stats: dict[float, list[list[float]]] = {f: [] for f in fprs}
    for seed in range(args.splits):
        rng = np.random.default_rng(seed)
        perm = rng.permutation(ids)
        calib, rest = perm[: len(ids) // 2], perm[len(ids) // 2:]
        enrolled = set(rest[: len(rest) // 2].tolist())
        a = np.isin(labels, calib)
        report = verification_report(pair_distances(emb[a], labels[a]), fprs=fprs,
                                     bootstrap_reps=0)
        g_rows = [i for i in range(len(labels)) if labels[i] in enrolled and cams[i] == 0]
        q_rows = [i for i in range(len(labels)) if labels[i] in set(rest) and cams[i] == 1]
        gallery = Gallery.for_extractor(fe, faiss_min_size=None)
        gallery.add(emb[g_rows], labels[g_rows].tolist())
        for p in report.points:
            result = gallery.assign(emb[q_rows], threshold=p.threshold)
            known = [r for r, i in zip(result, q_rows) if labels[i] in enrolled]
            truth = [labels[i] for i in q_rows if labels[i] in enrolled]
            unknown = [r for r, i in zip(result, q_rows) if labels[i] not in enrolled]
            stats[p.target_fpr].append([
                np.mean([r.label == t for r, t in zip(known, truth)]),
                np.mean([(not r.new) and r.label != t for r, t in zip(known, truth)]),
                np.mean([r.new for r in known]),
                np.mean([r.new for r in unknown]),
                p.threshold, len(known), len(unknown)])
    rows = []
    for f in fprs:
        s = np.asarray(stats[f])
        m, sd = s.mean(0), s.std(0)
        rows.append([f"{f:g}", f"{m[4]:.3f}", f"{100 * m[0]:.1f} +- {100 * sd[0]:.1f}",
                     f"{100 * m[1]:.1f} +- {100 * sd[1]:.1f}",
                     f"{100 * m[2]:.1f} +- {100 * sd[2]:.1f}",
                     f"{100 * m[3]:.1f} +- {100 * sd[3]:.1f}"])
    print(f"{args.splits} splits; per split {int(s[0, 5])} queries of enrolled people, "
          f"{int(s[0, 6])} of people never enrolled; mean +- sd over splits")
    print_table(["FPR", "threshold", "enrolled: right %", "enrolled: wrong person %",
                 "enrolled: called new %", "not enrolled: called new %"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
