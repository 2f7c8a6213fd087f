"""The data path on real crops: a CSV manifest and the test loader give torchreid's features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from omnireid.data import build_test_loader, load_dataset
from omnireid.models import create_model
from tests.conftest import require_file


def test_manifest_and_test_loader_reproduce_torchreid_features(compat_dir: Path) -> None:
    root = compat_dir / "cuhk03_pair1_val"
    ds = load_dataset("csv_manifest", require_file(root / "manifest.csv"))
    assert ds.has_cameras and len(ds.train) == 938 and ds.num_train_pids == 100
    assert sorted({s.camid for s in ds.train}) == [0, 1]
    reference = np.load(require_file(root / "features_osnet_x0_25_market1501.npy"))[:16]
    model = create_model("osnet_x0_25", weights=require_file(compat_dir / "weights/osnet_x0_25_market1501.pth"))
    model.eval()
    loader = build_test_loader(ds.train[:16], height=256, width=128, batch_size=16, num_workers=0)
    with torch.no_grad():
        feats = torch.cat([model(b.images).embedding for b in loader]).numpy()
    assert feats.shape == reference.shape
    np.testing.assert_allclose(feats, reference, atol=1e-4, rtol=1e-4)
