"""Two-process DistributedDataParallel training on the CPU (gloo) through torchrun."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from tests.test_train_fit import child_env, syn_root, tiny_recipe, write_recipe  # noqa: F401


def test_torchrun_two_processes_agree_on_weights(syn_root, tmp_path) -> None:  # noqa: F811
    out = tmp_path / "ddp"
    recipe = write_recipe(tmp_path / "ddp.yaml", tiny_recipe(
        syn_root, out, train={"max_epoch": 2, "max_steps_per_epoch": 2}, data={"batch_size": 8}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "omnireid", "train", "-c", str(recipe)]
    proc = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    digests = summary["rank_weight_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and records[0]["fixbase"] and records[1]["steps"] == 2
    # training moved the weights away from the initialisation
    from omnireid.models import create_model

    torch.manual_seed(1)
    init = create_model("osnet_x0_25", num_classes=12).state_dict()
    trained = torch.load(out / "model.pth", weights_only=True)
    assert not torch.equal(init["conv1.conv.weight"], trained["conv1.conv.weight"])
