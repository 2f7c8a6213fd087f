"""torchreid's training checkpoints (``model.pth.tar-N``) load safely: the numbers stored beside
the weights (a ``numpy.float32`` rank-1) are allowed, nothing else is."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from omnireid.cli import main
from omnireid.models import create_model, load_weights
from omnireid.models.weights import WeightsError, read_checkpoint, to_torchreid
from tests._robust_fixtures import write_manifest

pytestmark = pytest.mark.usefixtures("one_thread")


def torchreid_engine_checkpoint(path, model, epoch: int = 60, legacy: bool = False):
    """Write ``path`` as torchreid's ``Engine.save_model`` does (torchreid/engine/engine.py):
    ``{'state_dict', 'epoch', 'rank1', 'optimizer', 'scheduler'}`` with the weights in torchreid's
    parameter layout and ``rank1 = cmc[0]`` of a float32 NumPy CMC curve."""
    optimizer = torch.optim.Adam(model.parameters(), lr=0.0015, amsgrad=True)
    model.train()
    model(torch.randn(2, 3, 64, 32)).logits.sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[20, 40])  # a Counter inside
    cmc = np.asarray([0.5, 0.75, 0.9], dtype=np.float32)
    state = {"state_dict": to_torchreid(model.state_dict(), model.arch), "epoch": epoch, "rank1": cmc[0],
             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


def _features(model) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(torch.randn(3, 3, 64, 32, generator=torch.Generator().manual_seed(1))).embedding


def test_a_torchreid_training_checkpoint_loads_into_create_model(tmp_path) -> None:
    torch.manual_seed(0)
    source = create_model("osnet_x0_25", num_classes=7)
    path = torchreid_engine_checkpoint(tmp_path / "model.pth.tar-60", source)
    loaded = create_model("osnet_x0_25", weights=path)
    assert torch.equal(_features(loaded), _features(source))
    report = load_weights(create_model("osnet_x0_25", num_classes=7), path)
    assert report.layout == "torchreid_osnet" and report.epoch == 60
    assert report.meta["rank1"] == pytest.approx(0.5) and isinstance(report.meta["rank1"], float)


def test_numpy_1_names_in_legacy_files_load_too(tmp_path) -> None:
    """Files written under NumPy 1.x name the scalar reconstructor ``numpy.core.multiarray``."""
    torch.manual_seed(0)
    path = torchreid_engine_checkpoint(tmp_path / "model.pth.tar-5", create_model("osnet_x0_25", num_classes=3),
                                       epoch=5, legacy=True)
    data = path.read_bytes()
    assert b"numpy._core.multiarray" in data
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert load_weights(create_model("osnet_x0_25", num_classes=3), path).epoch == 5


@pytest.mark.parametrize("payload", [np.array(["text"], dtype=object), np.float32(1).dtype.type])
def test_other_numpy_objects_are_still_refused(tmp_path, payload) -> None:
    path = tmp_path / "model.pth.tar-1"
    torch.save({"state_dict": create_model("osnet_x0_25").state_dict(), "extra": payload}, path)
    with pytest.raises(WeightsError, match="model.pth.tar-1: refused to load") as err:
        read_checkpoint(path)
    message = str(err.value)
    assert "\x1b" not in message, "terminal control codes must not reach the user"
    assert "Check the documentation of torch.load" in message, "torch's advice is shown whole"


def test_omnireid_eval_reads_a_torchreid_training_checkpoint(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    path = torchreid_engine_checkpoint(tmp_path / "model.pth.tar-60", create_model("osnet_x0_25", num_classes=5))
    manifest = write_manifest(tmp_path / "data", range(0), test_ids=range(3), cams=2, per_cam=2)
    out = tmp_path / "eval"
    code = main(["eval", "--model", "osnet_x0_25", "--weights", str(path), "--size", "64x32", "--num-vis", "0",
                 "--data", f"[{{name: csv_manifest, root: {manifest}, as: mysite}}]", "--output", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "training checkpoint of epoch 60, rank1 0.5" in printed and "mysite" in printed
    results = json.loads((out / "results.json").read_text())
    assert list(results["targets"]) == ["mysite"]


def test_error_text_is_cleaned_and_shown_whole(capsys) -> None:
    from omnireid.cli import report_error
    from omnireid.errors import CheckpointError

    report_error("eval", CheckpointError("x.pth: refused\n\x1b[1mdo this only if you trust it\x1b[0m\n\tstep (2)"))
    err = capsys.readouterr().err
    assert err == "omnireid eval: error: x.pth: refused\n  do this only if you trust it\n  \tstep (2)\n"
