"""The architecture search (NAS): its config, the loop, resume, run folders and `omnireid nas`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from omnireid.cli import main
from omnireid.config import ConfigError, NasConfig, load_nas_config
from omnireid.engine import nas as nas_module
from omnireid.engine.nas import (
    BlockConvergence,
    NasResult,
    block_convergence,
    build_arch_optimizer,
    nas,
    save_nas,
    seed_agreement,
    undecided_note,
)
from omnireid.engine.optim import OptimizerSet
from omnireid.engine.run_folder import LOCK_NAME, RunFolderError, claim_run_folder
from omnireid.models import OSNetArch, create_model
from omnireid.models.supernet import NAS_CANDIDATES, build_supernet

REPO = Path(__file__).resolve().parents[1]
TINY = ("{num_ids: 6, num_cameras: 2, cameras_per_id: [2, 2], images_per_camera: [2, 3], "
        "num_distractors: 2, num_junk: 1, height: 64, width: 32}")

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_overrides(root: Path, out: Path, epochs: int = 1, mode: str = "mixture") -> list[str]:
    return [f"data.root={root}", f"data.synthetic={TINY}", "data.sources=[synthetic_a]",
            "data.height=32", "data.width=16", "data.batch_size=4", f"train.max_epoch={epochs}",
            "train.max_steps_per_epoch=2", f"nas.mode={mode}", "nas.decay_every=1", "nas.arch_start_epoch=0",
            "nas.width=0.25", "train.num_threads=1", "train.progress=false", f"train.output_dir={out}"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


# ---------------------------------------------------------------- config
def test_repo_config_is_the_default_recipe() -> None:
    # configs/nas.yaml writes out the defaults of `omnireid nas` with their reasons
    assert load_nas_config("nas") == NasConfig()
    cfg = load_nas_config("nas", ["train.max_epoch=3", "nas.mode=single_path",
                                                      "data.sources=[synthetic_c, synthetic_d]",
                                                      "nas.child_width=1"])
    assert cfg.train.max_epoch == 3 and cfg.nas.mode == "single_path"
    assert cfg.data.sources == ["synthetic_c", "synthetic_d"]
    assert cfg.nas.child_width == 1.0 and isinstance(cfg.nas.child_width, float)


def test_the_cpu_recipes_are_the_ones_measured_in_docs() -> None:
    # docs/nas.md measures the default (recipe G) and the first recipe (nas_quick, the search of
    # `reproduce --quick`); a change to either is a new measurement, so the values are pinned
    cfg = NasConfig()
    assert cfg.data.sources == ["synthetic_a", "synthetic_b", "synthetic_c", "synthetic_d"]
    assert (cfg.train.max_epoch, cfg.train.max_steps_per_epoch, cfg.data.batch_size) == (24, 117, 32)
    n = cfg.nas
    assert (n.decay_every, n.arch_optim, n.arch_lr, n.arch_schedule, n.arch_start_epoch) == (4, "adam", 0.02, "constant", 6)
    quick = load_nas_config("nas_quick")
    assert quick.data.sources == ["synthetic_a", "synthetic_c"]
    assert (quick.train.max_epoch, quick.train.max_steps_per_epoch) == (6, 40)
    q = quick.nas
    assert (q.decay_every, q.arch_optim, q.arch_lr, q.arch_schedule, q.arch_start_epoch) == (1, "adam", 0.05, "same", 0)
    assert (q.width, n.width, q.mode, n.mode) == (0.25, 0.25, "mixture", "mixture")


def test_paper_config_is_the_published_search_recipe() -> None:
    # the values of torchreid projects/OSNet_AIN/nas.yaml (+ default_config.py for what it leaves
    # unset), read by hand and written here independently of configs/nas_paper.yaml
    cfg = load_nas_config("nas_paper")
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == ("sgd", 0.1, 0.9, 5e-4)
    assert (cfg.sched.name, cfg.train.max_epoch, cfg.data.batch_size) == ("cosine", 120, 512)
    assert cfg.data.sources == ["msmt17"] and cfg.data.combineall
    assert (cfg.data.height, cfg.data.width, cfg.data.random_flip, cfg.data.color_jitter) == (256, 128, True, True)
    assert (cfg.loss.softmax, cfg.loss.triplet, cfg.loss.label_smooth, cfg.data.sampler) == (1.0, 0.0, 0.1, "random")
    n = cfg.nas
    assert (n.init_temperature, n.decay_every, n.decay_rate, n.min_temperature) == (10.0, 20, 0.5, 1.0)
    assert (n.mode, n.width, n.affine_norms, n.share_weights, n.arch_optim) == ("mixture", 1.0, False, False, "same")
    # nothing of the CPU recipe leaks in through the defaults: every epoch is a full pass and
    # alpha trains from the first step on the network's schedule
    assert (cfg.train.max_steps_per_epoch, n.arch_start_epoch, n.arch_schedule) == (0, 0, "same")


def test_config_errors_name_the_file_and_key(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  max_epochs: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*train\.max_epochs.*Did you mean 'max_epoch'"):
        load_nas_config(bad)
    bad.write_text("nas:\n  decay_every: often\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*nas\.decay_every.*integer"):
        load_nas_config(bad)
    bad.write_text("nas:\n  mode: sometimes\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*nas\.mode='sometimes'"):
        load_nas_config(bad)
    bad.write_text("nas:\n  arch_optim: adam\n  arch_lr: 0\n")
    with pytest.raises(ConfigError, match=r"arch_optim=adam needs nas\.arch_lr > 0"):
        load_nas_config(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_nas_config(bad)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_nas_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"--set nas\.temprature=2.*Did you mean"):
        load_nas_config(None, ["nas.temprature=2"])


def test_partial_sections_keep_the_search_defaults(tmp_path) -> None:
    # a file that sets one data key keeps the other data defaults of the search (not the
    # training recipe's market1501 defaults); an empty section keeps its defaults too
    f = tmp_path / "r.yaml"
    f.write_text(yaml.safe_dump({"data": {"height": 32}}) + "nas:\n")
    cfg = load_nas_config(f)
    assert cfg.data.height == 32 and cfg.data.sources == NasConfig().data.sources
    assert cfg.nas == NasConfig().nas


# ---------------------------------------------------------------- architecture weights
def test_alpha_gets_its_own_optimiser_and_learning_rate() -> None:
    torch.manual_seed(0)
    model = build_supernet(5, width=0.25)
    cfg = load_nas_config(None, ["nas.arch_optim=adam", "nas.arch_lr=0.05", "optim.name=amsgrad",
                                 "optim.lr=0.001"])
    opt = build_arch_optimizer(model, cfg)
    assert isinstance(opt, OptimizerSet) and len(opt.optimizers) == 2
    alpha_ids = {id(a) for a in model.arch_parameters()}
    weight_group, arch_group = opt.param_groups
    assert not alpha_ids & {id(p) for p in weight_group["params"]}
    assert {id(p) for p in arch_group["params"]} == alpha_ids
    assert (arch_group["lr"], weight_group["lr"]) == (0.05, 0.001)
    same = build_arch_optimizer(model, load_nas_config(None, ["nas.arch_optim=same", "nas.arch_schedule=same"]))
    assert alpha_ids <= {id(p) for g in same.param_groups for p in g["params"]}


@pytest.mark.parametrize("arch_optim,expected_step", [("adam", 0.05), ("same", 0.003)])
def test_one_step_moves_alpha_by_its_own_learning_rate(arch_optim, expected_step) -> None:
    # Adam's first step moves every parameter with a non-zero gradient by exactly lr (m/sqrt(v) = +-1)
    torch.manual_seed(0)
    model = build_supernet(5, width=0.25)
    model.set_temperature(10.0)
    cfg = load_nas_config(None, [f"nas.arch_optim={arch_optim}", "nas.arch_lr=0.05", "optim.name=adam",
                                 "optim.lr=0.003", "optim.weight_decay=0", "nas.arch_schedule=same"])
    opt = build_arch_optimizer(model, cfg)
    before = model.alphas()
    logits = model(torch.randn(4, 3, 32, 16)).logits
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    moved = (model.alphas() - before).abs()
    assert moved.max().item() == pytest.approx(expected_step, rel=1e-3)


def test_block_convergence_is_the_argmax_entropy_and_margin() -> None:
    rows = [[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25], [0.0, 0.0, 1.0, 0.0]]
    conv = block_convergence(rows, ["b1", "b2", "b3"], [c.value for c in NAS_CANDIDATES])
    assert [c.chosen for c in conv] == ["none", "none", "after"]
    assert conv[0].probability == pytest.approx(0.7) and conv[0].margin == pytest.approx(0.6)
    assert conv[0].entropy_bits == pytest.approx(-(0.7 * math.log2(0.7) + 3 * 0.1 * math.log2(0.1)))
    assert conv[1].entropy_bits == pytest.approx(2.0) and conv[1].margin == 0.0
    assert conv[2].entropy_bits == 0.0 and conv[2].probability == 1.0


def _arch(blocks: str) -> OSNetArch:
    names = {"n": "none", "i": "inside", "a": "after", "b": "both"}
    return OSNetArch.from_dict({"width": 0.25, "blocks": [names[c] for c in blocks], "conv1_in": True})


def test_seed_agreement() -> None:
    names = _arch("nnnnnn").block_names()
    same = seed_agreement([1, 2, 3], [_arch("iinii-".replace("-", "n"))] * 3, names)
    assert same.same_child == 3 and len(same.agreeing_blocks) == 6 and same.converged
    two = seed_agreement([1, 2, 3], [_arch("iiniin"), _arch("iiniin"), _arch("abbbbb")], names)
    assert two.same_child == 2 and two.agreeing_blocks == [] and two.converged
    assert two.majority_child == ["inside", "inside", "none", "inside", "inside", "none"]
    five = seed_agreement([1, 2, 3], [_arch("iiniin"), _arch("iiniia"), _arch("iiniib")], names)
    assert five.same_child == 1 and len(five.agreeing_blocks) == 5 and five.converged
    four = seed_agreement([1, 2, 3], [_arch("iiniin"), _arch("iinian"), _arch("iinibb")], names)
    assert four.same_child == 1 and len(four.agreeing_blocks) == 4 and not four.converged
    assert four.choices[4] == ["inside", "after", "both"]
    with pytest.raises(ValueError):
        seed_agreement([1, 2], [_arch("nnnnnn")], names)


# ---------------------------------------------------------------- the loop
@pytest.mark.parametrize("mode,share", [("mixture", False), ("single_path", False), ("two_path", True)])
def test_tiny_search_runs_and_derives_the_argmax(data_root, tmp_path, mode, share) -> None:
    cfg = load_nas_config(None, _tiny_overrides(data_root, tmp_path / "out", epochs=2, mode=mode)
                          + [f"nas.share_weights={str(share).lower()}"])
    result = nas(cfg, plot=False)
    assert [r.temperature for r in result.history] == [10.0, 5.0]
    last = result.history[-1]
    assert len(last.probabilities) == 6 and all(abs(sum(p) - 1) < 1e-5 for p in last.probabilities)
    chosen = [NAS_CANDIDATES[max(range(4), key=a.__getitem__)] for a in last.alphas]
    assert list(result.arch.blocks) == chosen and result.arch.conv1_in
    assert [c.chosen for c in result.convergence] == [p.value for p in chosen]
    # alpha moved away from its initial ones
    assert any(abs(a - 1.0) > 1e-3 for row in last.alphas for a in row)
    assert result.seconds > 0 and result.cpu_seconds > 0 and result.peak_rss_mb > 0 and result.steps == 4
    out = tmp_path / "out"
    assert OSNetArch.load(out / "arch.json") == result.arch
    report = json.loads((out / "search.json").read_text())
    assert OSNetArch.load(out / "search.json") == result.arch  # the report holds the spec too
    assert report["history"][0]["temperature"] == 10.0
    assert [c["probability"] for c in report["convergence"]] == [max(p) for p in last.probabilities]
    assert NasResult.from_dict(report).arch == result.arch
    assert "p(chosen)" in (out / "report.md").read_text()


def test_arch_start_epoch_holds_alpha_still(data_root, tmp_path) -> None:
    cfg = load_nas_config(None, _tiny_overrides(data_root, tmp_path / "o", epochs=2)
                          + ["nas.arch_optim=adam", "nas.arch_lr=0.1", "nas.arch_start_epoch=1"])
    result = nas(cfg, plot=False)
    first, second = result.history
    assert all(a == 1.0 for row in first.alphas for a in row) and first.arch_lr == 0.0
    assert any(abs(a - 1.0) > 0.05 for row in second.alphas for a in row) and second.arch_lr > 0


@pytest.mark.parametrize("schedule", ["same", "constant"])
def test_arch_schedule_constant_keeps_alpha_rate_while_the_network_decays(data_root, tmp_path, schedule) -> None:
    cfg = load_nas_config(None, _tiny_overrides(data_root, tmp_path / schedule, epochs=3)
                          + ["nas.arch_optim=adam", "nas.arch_lr=0.02", "sched.name=cosine",
                             f"nas.arch_schedule={schedule}"])
    history = nas(cfg, plot=False).history
    lrs, arch_lrs = [r.lr for r in history], [r.arch_lr for r in history]
    assert lrs[0] > lrs[1] > lrs[2]  # the network's cosine schedule
    if schedule == "constant":
        assert arch_lrs == [0.02] * 3
    else:  # alpha follows the same factor as the network's rate
        np.testing.assert_allclose(np.array(arch_lrs) / 0.02, np.array(lrs) / lrs[0], rtol=1e-9)


def test_arch_schedule_constant_needs_an_optimiser_of_its_own() -> None:
    with pytest.raises(ConfigError, match="arch_schedule"):
        load_nas_config(None, ["nas.arch_optim=same", "nas.arch_schedule=constant"])


def test_interrupted_search_resumes_to_the_same_result(data_root, tmp_path, monkeypatch) -> None:
    overrides = _tiny_overrides(data_root, tmp_path / "ref", epochs=3) + ["nas.arch_optim=adam",
                                                                          "nas.arch_lr=0.05"]
    reference = nas(load_nas_config(None, overrides), plot=False)

    cut = [o.replace(str(tmp_path / "ref"), str(tmp_path / "cut")) for o in overrides]
    real = nas_module.train_one_epoch
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("stopped in epoch 3")
        return real(*args, **kwargs)

    monkeypatch.setattr(nas_module, "train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        nas(load_nas_config(None, cut), plot=False)
    assert not (tmp_path / "cut" / ".lock").exists()  # the lock is released
    monkeypatch.setattr(nas_module, "train_one_epoch", real)
    resumed = nas(load_nas_config(None, cut), plot=False)
    # same process, same kernels: the resumed search ends exactly where the uninterrupted one did
    assert [r.alphas for r in resumed.history] == [r.alphas for r in reference.history]
    assert resumed.arch == reference.arch and resumed.steps == reference.steps == 6
    # a finished search is read back, not run again
    again = nas(load_nas_config(None, cut), plot=False)
    assert again.history[-1].alphas == reference.history[-1].alphas


def test_run_folders_are_not_clobbered(data_root, tmp_path) -> None:
    out = tmp_path / "run"
    nas(load_nas_config(None, _tiny_overrides(data_root, out)), plot=False)
    other = _tiny_overrides(data_root, out) + ["train.seed=7"]
    with pytest.raises(RunFolderError, match="different recipe"):
        nas(load_nas_config(None, other), plot=False)
    result = nas(load_nas_config(None, other), overwrite=True, plot=False)
    assert result.config["train"]["seed"] == 7
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="not empty"):
        nas(load_nas_config(None, _tiny_overrides(data_root, foreign)), plot=False)
    with claim_run_folder(tmp_path / "busy", "nas", "x"):
        with pytest.raises(RunFolderError, match="in use by another run"):
            nas(load_nas_config(None, _tiny_overrides(data_root, tmp_path / "busy")), plot=False)


def test_save_nas_rewrites_the_reports(data_root, tmp_path) -> None:
    result = nas(load_nas_config(None, _tiny_overrides(data_root, tmp_path / "a")), plot=False)
    art = save_nas(result, tmp_path / "copy", plot=False)
    assert OSNetArch.load(art.spec) == result.arch and art.plot is None
    assert json.loads(art.report_json.read_text())["steps"] == result.steps


# ---------------------------------------------------------------- the command
def test_nas_command_end_to_end(data_root, tmp_path, capsys) -> None:
    out = tmp_path / "nas"
    argv = ["nas", "-c", "nas", "-o", str(out), "--quiet"]
    for item in _tiny_overrides(data_root, out):
        argv += ["--set", item]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "conv4-2" in text and f"report folder: {out}" in text and "blocks decided" in text
    # a tiny search decides nothing: the command and the report name the open blocks
    assert "Not decided (p(chosen) < 0.5): conv2-1" in text
    assert "Not decided (p(chosen) < 0.5): conv2-1" in (out / "report.md").read_text()
    for name in ("arch.json", "search.json", "report.md", "probabilities.png", "last.pt", "run.json"):
        assert (out / name).is_file(), name
    assert (out / "probabilities.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| conv2-1 |" in (out / "report.md").read_text()
    # the child is a normal model, buildable at another width
    child = create_model("osnet", arch=out / "arch.json", width=0.5, num_classes=3).eval()
    with torch.no_grad():
        y = child(torch.randn(2, 3, 64, 32))
    assert y.embedding.shape == (2, 512) and y.logits.shape == (2, 3)


def test_nas_command_over_seeds(data_root, tmp_path, capsys) -> None:
    out = tmp_path / "seeds"
    argv = ["nas", "-o", str(out), "--quiet", "--no-plot", "--seeds", "1,2"]
    for item in _tiny_overrides(data_root, out):
        argv += ["--set", item]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "blocks agree across seeds" in text
    report = json.loads((out / "search.json").read_text())
    assert [s["seed"] for s in report["seeds"]] == [1, 2]
    children = [OSNetArch.load(out / f"seed_{s}" / "arch.json") for s in (1, 2)]
    agree = [n for n, a, b in zip(children[0].block_names(), children[0].blocks, children[1].blocks) if a == b]
    assert report["agreement"]["agreeing_blocks"] == agree
    assert "all agree" in (out / "report.md").read_text()


def test_seeds_searched_one_by_one_are_reported_together_without_searching_again(data_root, tmp_path, capsys) -> None:
    out = tmp_path / "apart"
    for seed in (1, 2):
        argv = ["nas", "-o", str(out / f"seed_{seed}"), "--quiet", "--no-plot"]
        for item in [*_tiny_overrides(data_root, out / f"seed_{seed}"), f"train.seed={seed}"]:
            argv += ["--set", item]
        assert main(argv) == 0
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("seed_*/*") if p.is_file() and p.name != LOCK_NAME}
    argv = ["nas", "-o", str(out), "--quiet", "--no-plot", "--seeds", "1,2"]
    for item in _tiny_overrides(data_root, out):
        argv += ["--set", item]
    capsys.readouterr()
    assert main(argv) == 0  # a folder of same-recipe seed folders is taken as it is
    assert "blocks agree across seeds" in capsys.readouterr().out
    assert [s["seed"] for s in json.loads((out / "search.json").read_text())["seeds"]] == [1, 2]
    # --overwrite replaces other recipes only: the finished seeds are read back, not searched again
    assert main([*argv, "--overwrite"]) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # another recipe in a seed folder is refused without --overwrite, searched again with it
    other = [*argv, "--set", "nas.decay_rate=0.6"]
    assert main(other) == 2
    assert "different recipe" in capsys.readouterr().err
    assert main([*other, "--overwrite"]) == 0
    assert (out / "seed_1" / "search.json").stat().st_mtime_ns != stamps[out / "seed_1" / "search.json"]


def test_nas_command_reports_bad_input(tmp_path, capsys) -> None:
    assert main(["nas", "--set", "data.sources=[]", "-o", str(tmp_path / "x")]) == 2
    assert "data.sources must name at least one dataset" in capsys.readouterr().err
    assert main(["nas", "--seeds", "1,1", "-o", str(tmp_path / "y")]) == 2
    assert "distinct seeds" in capsys.readouterr().err


def test_child_retrains_through_the_training_recipe(data_root, tmp_path, capsys) -> None:
    # the path the docs give: omnireid train --set model.arch=FOLDER/arch.json
    spec = tmp_path / "arch.json"
    arch = OSNetArch.from_dict({"width": 0.25, "blocks": ["both", "none", "after", "inside", "none", "none"],
                                "conv1_in": True})
    arch.save(spec)
    argv = ["train", "-c", "demo", "-o", str(tmp_path / "train"),
            "--set", f"model.arch={spec}", "--set", f"data.root={data_root}",
            "--set", f"data.synthetic={TINY}", "--set", "data.targets=[synthetic_a]",
            "--set", "data.height=32", "--set", "data.width=16", "--set", "data.batch_size=4",
            "--set", "data.num_instances=2", "--set", "data.num_workers=0",
            "--set", "train.max_epoch=1", "--set", "train.max_steps_per_epoch=1",
            "--set", "train.progress=false", "--set", "train.num_threads=1"]
    assert main(argv) == 0
    saved = (tmp_path / "train" / "config.yaml").read_text()
    assert f"arch: {spec}" in saved
    from omnireid.config import load_config
    from omnireid.engine.fit import build_model

    model = build_model(load_config(tmp_path / "train" / "config.yaml").model, num_classes=3)
    assert model.arch == arch


def test_seeds_figure_draws_every_block_and_seed(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from types import SimpleNamespace

    from omnireid.models.arch import AIN_BLOCKS, make_arch
    from omnireid.viz.nas_plot import plot_nas_seeds

    names = [f"b{i}" for i in range(6)]
    cands = ["none", "inside", "after", "both"]

    def result(seed: int, p_first: float) -> SimpleNamespace:
        rest = (1.0 - p_first) / 3
        probs = [[p_first, rest, rest, rest] for _ in names]
        return SimpleNamespace(block_names=names, candidates=cands, config={"train": {"seed": seed}},
                               history=[SimpleNamespace(probabilities=probs)], arch=make_arch(0.25, AIN_BLOCKS))

    path = plot_nas_seeds([result(1, 0.7), result(2, 0.4)], tmp_path / "seeds.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob("*.tmp.png"))
    with pytest.raises(ValueError, match="at least one"):
        plot_nas_seeds([], tmp_path / "none.png")


def test_undecided_note_names_only_the_open_blocks() -> None:
    blocks = [BlockConvergence("conv2-1", "inside", 0.97, 0.2, 0.9),
              BlockConvergence("conv2-2", "inside", 0.44, 1.9, 0.2),
              BlockConvergence("conv3-1", "none", 0.5, 1.5, 0.1)]
    note = undecided_note(blocks)
    assert "conv2-2 (inside, p = 0.44)" in note and "conv2-1" not in note and "conv3-1" not in note
    assert undecided_note([blocks[0], blocks[2]]) is None  # p = 0.5 counts as decided
