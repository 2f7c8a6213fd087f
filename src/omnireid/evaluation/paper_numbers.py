"""Published numbers on real datasets that bear on the claims of :mod:`omnireid.evaluation.claims`.

Source of every number: torchreid's model zoo, ``docs/MODEL_ZOO.md`` in KaiyangZhou/deep-person-reid
(the results of the OSNet papers, ICCV 2019 and TPAMI 2021, as the authors list them; rank-1 and
mAP in %). The lines cited are those of that file at the repository's current head. The recipes
differ between tables (noted beside each), and OSNet-IBN is evaluated with euclidean distance
where OSNet-AIN uses cosine in the single-source cross-domain tables.
"""

from __future__ import annotations

from typing import Any

SOURCE = "torchreid docs/MODEL_ZOO.md (KaiyangZhou/deep-person-reid)"

_MS_TO_MD = {
    "table": "MSMT17 (combineall=True) -> Market1501 & DukeMTMC-reID, x1_0, softmax, 256x128, "
             "random_flip + color_jitter",
    "lines": "MODEL_ZOO.md lines 67-78",
    "rank1 (mAP)": {
        "osnet_x1_0": {"msmt17->market1501": "66.6 (37.5)", "msmt17->dukemtmcreid": "66.0 (45.3)"},
        "osnet_ibn_x1_0": {"msmt17->market1501": "66.5 (37.2)", "msmt17->dukemtmcreid": "67.4 (45.6)"},
        "osnet_ain_x1_0": {"msmt17->market1501": "70.1 (43.3)", "msmt17->dukemtmcreid": "71.1 (52.7)"},
    },
}
_MULTI = {
    "table": "Multi-source domain generalization (MS = MSMT17, M = Market1501, D = DukeMTMC-reID, "
             "C = CUHK03), x1_0, softmax, cosine distance, trained with "
             "im_osnet_ain_x1_0_softmax_256x128_amsgrad_cosine.yaml and max_epoch=50",
    "lines": "MODEL_ZOO.md lines 81-93",
    "rank1 (mAP)": {
        "osnet_x1_0": {"MS+D+C->M": "72.5 (44.2)", "MS+M+C->D": "65.2 (47.0)", "MS+D+M->C": "23.9 (23.3)",
                       "D+M+C->MS": "33.2 (12.6)"},
        "osnet_ibn_x1_0": {"MS+D+C->M": "73.0 (44.9)", "MS+M+C->D": "64.6 (45.7)", "MS+D+M->C": "25.7 (25.4)",
                           "D+M+C->MS": "39.8 (16.2)"},
        "osnet_ain_x1_0": {"MS+D+C->M": "73.3 (45.8)", "MS+M+C->D": "65.6 (47.2)", "MS+D+M->C": "27.4 (27.1)",
                           "D+M+C->MS": "40.2 (16.2)"},
    },
}
_SINGLE_IBN_AIN = {
    "table": "Market1501 -> DukeMTMC-reID and DukeMTMC-reID -> Market1501, x1_0, softmax, 256x128, "
             "random_flip + color_jitter (IBN: euclidean, AIN: cosine distance)",
    "lines": "MODEL_ZOO.md lines 49-64",
    "rank1 (mAP)": {
        "osnet_ibn_x1_0": {"market1501->dukemtmcreid": "48.5 (26.7)", "dukemtmcreid->market1501": "57.7 (26.1)"},
        "osnet_ain_x1_0": {"market1501->dukemtmcreid": "52.4 (30.5)", "dukemtmcreid->market1501": "61.0 (30.6)"},
    },
}

PAPER_NUMBERS: dict[str, Any] = {
    "a": {
        "source": SOURCE,
        "numbers": None,
        "note": "The model zoo lists same-domain results only for plain OSNet (lines 30-44: x1_0 "
                "94.2 (82.6) on Market1501, 87.0 (70.2) on DukeMTMC-reID, 74.9 (43.8) on MSMT17), "
                "none for OSNet-IBN or OSNet-AIN, so it holds no number for this claim.",
    },
    "b": {
        "source": SOURCE,
        "numbers": [_MS_TO_MD, _MULTI],
        "note": "Single source MSMT17: OSNet-AIN is 3.5-5.1 rank-1 points above OSNet, OSNet-IBN "
                "within 1.4 points of it (-0.1 on Market1501). Multi-source: OSNet-AIN is above "
                "OSNet on all 4 held-out sets (by 0.4-7.0), OSNet-IBN on 3 of 4 (below it on "
                "MS+M+C->D).",
    },
    "c": {
        "source": SOURCE,
        "numbers": [_SINGLE_IBN_AIN, _MS_TO_MD, _MULTI],
        "note": "OSNet-AIN is above OSNet-IBN in every listed cross-domain result (by 3.3-3.9 "
                "rank-1 points single-source from Market/Duke, 3.6-3.7 from MSMT17, 0.3-1.7 "
                "multi-source); the single-source rows use different distances.",
    },
    "d": {
        "source": SOURCE,
        "numbers": [_SINGLE_IBN_AIN, _MS_TO_MD],
        "note": "OSNet-AIN is the placement found by the paper's search; OSNet-IBN is hand-designed. "
                "The model zoo compares only these two (see claim c).",
    },
    "e": {
        "source": SOURCE,
        "numbers": [_MS_TO_MD, _MULTI],
        "note": "Market1501 as the unseen domain: multi-source MS+D+C beats MSMT17 alone for every "
                "model (OSNet 72.5 vs 66.6, IBN 73.0 vs 66.5, AIN 73.3 vs 70.1). DukeMTMC-reID: "
                "MS+M+C is below MSMT17 alone for every model (65.2 vs 66.0, 64.6 vs 67.4, 65.6 vs "
                "71.1). The two tables use different recipes (single-source: the models' own "
                "recipes; multi-source: amsgrad, cosine, 50 epochs).",
    },
}

__all__ = ["PAPER_NUMBERS", "SOURCE"]
