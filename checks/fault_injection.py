"""Fault injection: replay user mistakes and broken inputs against the installed `omnireid` CLI.

Every case builds its own small inputs in a scratch folder, runs one or more `omnireid` commands
and sorts the result into one outcome:

    clear error   non-zero exit, a one-line `omnireid CMD: error: ...` naming the file/option
    refused       the same, for a conflict (a folder in use, settings that cannot change)
    recovered     exit 0 and the documented recovery checked (files skipped and listed, resume ...)
    traceback     a raw Python traceback reached the user                    (a failure)
    cryptic       non-zero exit without the file/option named                (a failure)
    silent        exit 0 although the input was wrong or the check failed    (a failure)

and prints one table (case, expected, outcome, message) with totals. Cases marked *pending* need a
feature the code does not have yet (e.g. self-describing gallery files) and are counted apart while
not merged.

    python checks/fault_injection.py                       # the `omnireid` on PATH
    python checks/fault_injection.py --cli "python -m omnireid" --only manifest
    python checks/fault_injection.py --markdown docs/fault_injection_results.md

The disk-full and read-only cases mount small tmpfs folders when run as root (Linux); otherwise
they use a file-size limit (disk full) and a folder without write permission (read-only).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

FAILURES = ("traceback", "cryptic", "silent", "data loss")


@dataclass
class Result:
    outcome: str
    message: str


@dataclass
class Case:
    name: str
    group: str
    expected: str
    run: Callable[[Ctx], Result]
    needs: str = ""  # a feature the case needs that is not there yet (counted apart until it is)
    added: bool = False  # beyond the original list of faults


@dataclass
class Ctx:
    cli: list[str]
    work: Path
    env: dict
    timeout: float = 300.0
    cache: dict = field(default_factory=dict)

    def run(self, *args: str, cwd: Path | None = None, timeout: float | None = None, **popen) -> subprocess.CompletedProcess:
        return subprocess.run([*self.cli, *args], capture_output=True, text=True, env=self.env,
                              cwd=cwd or self.work, timeout=timeout or self.timeout, **popen)

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen([*self.cli, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env, cwd=self.work, **kw)

    def folder(self, name: str) -> Path:
        path = self.work / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path


# ---------------------------------------------------------------------------------------------
# inputs


def person_jpeg(pid: int, cam: int, k: int) -> bytes:
    rng = np.random.default_rng(1000 * pid + 10 * cam + k)
    base = np.array([(pid * 53) % 256, (pid * 97) % 256, (pid * 31) % 256], dtype=np.int16)
    arr = np.clip(base + rng.integers(-40, 40, (64, 32, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def manifest(folder: Path, train_ids=range(1, 7), test_ids=range(10, 13), cams=2, per_cam=2,
             name="m.csv", extra_rows=()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["path,pid,camid,split"]
    for pid in [*train_ids, *test_ids]:
        for cam in range(cams):
            for k in range(per_cam):
                rel = f"images/{pid:04d}_{cam}_{k}.jpg"
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                (folder / rel).write_bytes(person_jpeg(pid, cam, k))
                split = "train" if pid in train_ids else ("query" if cam == 0 else "gallery")
                rows.append(f"{rel},{pid},{cam},{split}")
    rows.extend(extra_rows)
    (folder / name).write_text("\n".join(rows) + "\n")
    return folder / name


def market_tree(root: Path, train_ids=range(1, 5), test_ids=range(40, 43), query_ids=None) -> Path:
    base = root / "market1501"
    for sub, ids, cams in (("bounding_box_train", train_ids, (1, 2)),
                           ("query", test_ids if query_ids is None else query_ids, (1,)),
                           ("bounding_box_test", test_ids, (2, 3))):
        (base / sub).mkdir(parents=True, exist_ok=True)
        for pid in ids:
            for cam in cams:
                name = f"{pid:04d}_c{cam}s1_000000_00.jpg" if pid >= 0 else f"-1_c{cam}s1_000000_00.jpg"
                (base / sub / name).write_bytes(person_jpeg(abs(pid), cam, 0))
    return root


def recipe(path: Path, out: Path, sources, targets, **sections) -> Path:
    import yaml

    data = {
        "model": {"name": "osnet_x0_25"},
        "data": {"sources": sources, "targets": targets, "height": 64, "width": 32, "batch_size": 8,
                 "sampler": "random", "num_workers": 0},
        "optim": {"name": "amsgrad", "lr": 0.003},
        "sched": {"name": "constant"},
        "train": {"max_epoch": 2, "max_steps_per_epoch": 2, "output_dir": str(out), "progress": False,
                  "eval_freq": 0, "num_threads": 1, "channels_last": False, "save_curves": False},
        "test": {"batch_size": 16},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(data))
    return path


def base_data(ctx: Ctx) -> dict:
    """One training manifest, one test manifest, shared by the training cases."""
    if "data" not in ctx.cache:
        root = ctx.folder("data")
        ctx.cache["data"] = {"train": manifest(root / "train", test_ids=range(0), name="train.csv"),
                             "test": manifest(root / "test", train_ids=range(0), name="test.csv")}
    return ctx.cache["data"]


def train_recipe(ctx: Ctx, name: str, **sections) -> tuple[Path, Path]:
    d = base_data(ctx)
    folder = ctx.folder(name)
    out = folder / "run"
    src = [{"name": "csv_manifest", "root": str(d["train"])}]
    tgt = [{"name": "csv_manifest", "root": str(d["test"]), "as": "held_out"}]
    sources = sections.pop("sources", src)
    targets = sections.pop("targets", tgt)
    return recipe(folder / "r.yaml", out, sources, targets, **sections), out


def model_file(ctx: Ctx) -> Path:
    if "weights" not in ctx.cache:
        path = ctx.work / "weights.pth"
        code = ("import torch,sys; from omnireid.models import create_model, save_weights; torch.manual_seed(0); "
                "save_weights(create_model('osnet_x0_25'), sys.argv[1])")
        subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=ctx.env)
        ctx.cache["weights"] = path
    return ctx.cache["weights"]


# ---------------------------------------------------------------------------------------------
# outcomes


def first_error_line(text: str) -> str:
    for line in text.splitlines():
        if re.match(r"^omnireid \S+: ", line):
            return line
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def expect_error(proc: subprocess.CompletedProcess, *fragments: str, kind: str = "clear error") -> Result:
    text = proc.stderr + proc.stdout
    line = first_error_line(proc.stderr) or first_error_line(proc.stdout)
    if "Traceback (most recent call last)" in text:
        return Result("traceback", line)
    if proc.returncode == 0:
        return Result("silent", f"exit 0: {line or proc.stdout.strip().splitlines()[-1:]}")
    if not re.match(r"^omnireid \S+: ", line) or any(f not in text for f in fragments):
        return Result("cryptic", line)
    return Result(kind, line)


def expect_usage_error(proc: subprocess.CompletedProcess, option: str) -> Result:
    """argparse's own error for a value refused where it is parsed."""
    line = next((ln for ln in proc.stderr.splitlines() if "error:" in ln), "")
    if "Traceback" in proc.stderr:
        return Result("traceback", line)
    if proc.returncode == 0:
        return Result("silent", "exit 0")
    if option not in line:
        return Result("cryptic", line)
    return Result("clear error", line)


def recovered(proc: subprocess.CompletedProcess, ok: bool, message: str) -> Result:
    if "Traceback (most recent call last)" in proc.stderr:
        return Result("traceback", first_error_line(proc.stderr))
    if proc.returncode != 0:
        return Result("cryptic" if "error:" in proc.stderr else "traceback", first_error_line(proc.stderr))
    return Result("recovered" if ok else "silent", message)


def checkpoint_finite(ctx: Ctx, path: Path) -> bool:
    code = ("import sys, torch; s = torch.load(sys.argv[1], weights_only=True); "
            "bad = [k for k, v in s['model'].items() if v.is_floating_point() and not torch.isfinite(v).all()]; "
            "sys.exit(1 if bad else 0)")
    return subprocess.run([sys.executable, "-c", code, str(path)], env=ctx.env).returncode == 0


def corrupt_image(path: Path) -> None:
    path.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")


def bomb(path: Path) -> None:
    """A PNG of 20000x20000 pixels: 400 million, over PIL's decompression-bomb limit (about 179 million)."""
    Image.new("1", (20000, 20000)).save(path)


# ---------------------------------------------------------------------------------------------
# data loss


def two_runs_one_folder(ctx: Ctx) -> Result:
    r, out = train_recipe(ctx, "two_runs", train={"max_epoch": 40, "max_steps_per_epoch": 2})
    first = ctx.popen("train", "-c", str(r), "--set", "train.seed=11")
    deadline = time.time() + 120
    while not (out / ".omnireid.lock").exists() or "pid" not in (out / ".omnireid.lock").read_text():
        if first.poll() is not None or time.time() > deadline:
            return Result("traceback", "the first run did not start: " + first.stderr.read()[-300:])
        time.sleep(0.1)
    second = ctx.run("train", "-c", str(r), "--set", "train.seed=22")
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=120)
    res = expect_error(second, "in use by another run", f"pid {first.pid}", kind="refused")
    epochs = [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()] \
        if (out / "metrics.jsonl").exists() else []
    if epochs != sorted(set(epochs)):
        return Result("data loss", f"interleaved metrics.jsonl: {epochs}")
    return res


def new_run_into_finished_folder(ctx: Ctx) -> Result:
    r, out = train_recipe(ctx, "finished")
    first = ctx.run("train", "-c", str(r))
    if first.returncode != 0:
        return expect_error(first)
    before = (out / "best.pt").read_bytes()
    second = ctx.run("train", "-c", str(r), "--set", "train.seed=5")
    if (out / "best.pt").read_bytes() != before:
        return Result("data loss", "best.pt was replaced")
    return expect_error(second, "already holds a run", "--resume", "--overwrite", kind="refused")


def _resume_refused(ctx: Ctx, name: str, setting: str, fragment: str) -> Result:
    r, out = train_recipe(ctx, name)
    ctx.run("train", "-c", str(r))
    before = (out / "config.yaml").read_bytes()
    proc = ctx.run("train", "-c", str(r), "--resume", "--set", setting, "--set", "train.max_epoch=3")
    if (out / "config.yaml").read_bytes() != before:
        return Result("data loss", "config.yaml was rewritten before the resume failed")
    return expect_error(proc, fragment, "cannot change in the middle of a run", kind="refused")


def resume_other_model(ctx):
    return _resume_refused(ctx, "resume_model", "model.name=osnet_ain_x0_25", "model.name 'osnet_x0_25' -> 'osnet_ain_x0_25'")


def resume_other_optimiser(ctx):
    return _resume_refused(ctx, "resume_optim", "optim.name=sgd", "optim.name 'amsgrad' -> 'sgd'")


# ---------------------------------------------------------------------------------------------
# silently wrong


def huge_learning_rate(ctx: Ctx) -> Result:
    r, out = train_recipe(ctx, "huge_lr", train={"max_epoch": 6, "max_steps_per_epoch": 3, "eval_freq": -1})
    proc = ctx.run("train", "-c", str(r), "--set", "optim.lr=1e6")
    bad = [n for n in ("last.pt", "best.pt") if (out / n).exists() and not checkpoint_finite(ctx, out / n)]
    if bad:
        return Result("silent", f"non-finite checkpoint(s): {bad}")
    if proc.returncode == 0:
        return Result("silent", "exit 0 with lr=1e6")
    return expect_error(proc, "training stopped", kind="clear error")


def resume_with_new_lr(ctx: Ctx) -> Result:
    r, out = train_recipe(ctx, "resume_lr")
    ctx.run("train", "-c", str(r))
    proc = ctx.run("train", "-c", str(r), "--resume", "--set", "optim.lr=0.1", "--set", "train.max_epoch=3")
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()] \
        if (out / "metrics.jsonl").exists() else []
    ok = [x["lr"] for x in records] == [0.003, 0.003, 0.1] and "applying optim.lr 0.003 -> 0.1" in proc.stdout
    return recovered(proc, ok, "new lr applied from epoch 3 and said so" if ok else f"lr per epoch {[x['lr'] for x in records]}")


def _manifest_case(ctx: Ctx, name: str, rows, fragment: str) -> Result:
    m = manifest(ctx.folder(name), extra_rows=rows)
    return expect_error(ctx.run("data", "summary", "csv_manifest", "--root", str(m)), fragment, "m.csv")


def manifest_outside_root(ctx):
    return _manifest_case(ctx, "m_outside", ["../x.jpg,1,0,train"], "outside the manifest's folder")


def manifest_absolute(ctx):
    return _manifest_case(ctx, "m_absolute", ["/etc/hostname,1,0,train"], "absolute path")


def manifest_duplicates(ctx):
    return _manifest_case(ctx, "m_dup", ["images/0001_0_0.jpg,1,0,train"], "duplicate row")


def manifest_duplicates_dropped(ctx: Ctx) -> Result:
    folder = ctx.folder("m_dup_drop")
    m = manifest(folder, extra_rows=["images/0001_0_0.jpg,1,0,train"])
    proc = ctx.run("data", "summary", "csv_manifest", "--root", str(m), "-o", "duplicates=drop", "--json",
                   str(folder / "s.json"))
    return recovered(proc, proc.returncode == 0, "duplicates=drop keeps the first row of each (counted)")


def manifest_two_identities(ctx):
    return _manifest_case(ctx, "m_two_ids", ["images/0001_0_0.jpg,2,0,train"], "under two identities")


# ---------------------------------------------------------------------------------------------
# images


def bomb_in_extract(ctx: Ctx) -> Result:
    folder = ctx.folder("bomb_extract")
    (folder / "a.jpg").write_bytes(person_jpeg(1, 0, 0))
    bomb(folder / "big.png")
    proc = ctx.run("extract", str(folder), "-o", str(folder / "g.npz"), "--model", "osnet_x0_25",
                   "--weights", str(model_file(ctx)), "--input", "64x32")
    listed = "big.png" in proc.stdout and "decompression bomb" in proc.stdout
    return recovered(proc, listed, "skipped and listed: big.png (decompression bomb)" if listed else proc.stdout[-200:])


def bomb_in_training(ctx: Ctx) -> Result:
    folder = ctx.folder("bomb_train")
    m = manifest(folder / "d", test_ids=range(0))
    bomb(folder / "d" / "images" / "0001_0_0.png")
    rows = m.read_text().replace("images/0001_0_0.jpg", "images/0001_0_0.png")
    m.write_text(rows)
    r = recipe(folder / "r.yaml", folder / "run", [{"name": "csv_manifest", "root": str(m)}], ["synthetic_a"],
               train={"eval_freq": -1, "max_steps_per_epoch": 0, "max_epoch": 1})
    proc = ctx.run("train", "-c", str(r))
    tsv = folder / "run" / "skipped_images.tsv"
    ok = tsv.exists() and "0001_0_0.png" in tsv.read_text() and "decompression bomb" in tsv.read_text()
    return recovered(proc, ok, "skipped, listed in skipped_images.tsv, counted" if ok else "not listed")


def bomb_in_verify(ctx: Ctx) -> Result:
    folder = ctx.folder("bomb_verify")
    m = manifest(folder, test_ids=range(0))
    bomb(folder / "images" / "0001_0_0.png")
    m.write_text(m.read_text().replace("images/0001_0_0.jpg", "images/0001_0_0.png"))
    proc = ctx.run("data", "summary", "csv_manifest", "--root", str(m), "--verify")
    ok = "1 unreadable" in proc.stdout and "decompression bomb" in proc.stdout
    return recovered(proc, ok, "reported as unreadable, named" if ok else proc.stdout[-200:])


def bomb_as_search_query(ctx: Ctx) -> Result:
    folder = ctx.folder("bomb_search")
    for i in range(3):
        (folder / "g" / f"{i}.jpg").parent.mkdir(parents=True, exist_ok=True)
        (folder / "g" / f"{i}.jpg").write_bytes(person_jpeg(i, 0, 0))
    ctx.run("extract", str(folder / "g"), "-o", str(folder / "g.npz"), "--model", "osnet_x0_25",
            "--weights", str(model_file(ctx)), "--input", "64x32")
    bomb(folder / "q.png")
    return expect_error(ctx.run("search", str(folder / "q.png"), "--gallery", str(folder / "g.npz"),
                                "--report", str(folder / "rep")), "q.png")


def unreadable_training_image(ctx: Ctx) -> Result:
    folder = ctx.folder("bad_train_image")
    market_tree(folder / "data")
    victim = sorted((folder / "data" / "market1501" / "bounding_box_train").iterdir())[0]
    corrupt_image(victim)
    r = recipe(folder / "r.yaml", folder / "run", [{"name": "market1501", "root": str(folder / "data")}],
               [{"name": "market1501", "root": str(folder / "data")}], train={"max_steps_per_epoch": 0, "max_epoch": 1})
    proc = ctx.run("train", "-c", str(r))
    tsv = folder / "run" / "skipped_images.tsv"
    ok = tsv.exists() and victim.name in tsv.read_text() and "unreadable image(s) were skipped" in proc.stdout
    return recovered(proc, ok, f"skipped, listed and counted: {victim.name}" if ok else proc.stdout[-200:])


def unreadable_query_image(ctx: Ctx) -> Result:
    folder = ctx.folder("bad_query_image")
    market_tree(folder / "data")
    victim = sorted((folder / "data" / "market1501" / "query").iterdir())[0]
    corrupt_image(victim)
    r = recipe(folder / "r.yaml", folder / "run", [{"name": "market1501", "root": str(folder / "data")}],
               [{"name": "market1501", "root": str(folder / "data")}])
    proc = ctx.run("train", "-c", str(r))
    summary = folder / "run" / "summary.json"
    ok = summary.exists() and json.loads(summary.read_text())["final"]["market1501"]["skipped_images"] == 1
    return recovered(proc, ok, "left out of the evaluation, listed, counted in the results" if ok else "not counted")


def unreadable_image_strict(ctx: Ctx) -> Result:
    folder = ctx.folder("bad_image_strict")
    market_tree(folder / "data")
    victim = sorted((folder / "data" / "market1501" / "query").iterdir())[0]
    corrupt_image(victim)
    r = recipe(folder / "r.yaml", folder / "run", [{"name": "market1501", "root": str(folder / "data")}],
               [{"name": "market1501", "root": str(folder / "data")}], data={"on_bad_image": "error"})
    return expect_error(ctx.run("train", "-c", str(r)), victim.name)


def empty_query_set(ctx: Ctx) -> Result:
    folder = ctx.folder("empty_query")
    only_train = manifest(folder / "t", test_ids=range(0))
    r, out = train_recipe(ctx, "empty_query_run", targets=[{"name": "csv_manifest", "root": str(only_train)}])
    proc = ctx.run("train", "-c", str(r))
    if (out / "last.pt").exists():
        return Result("silent", "trained before refusing the target")
    return expect_error(proc, "0 query and 0 gallery")


def all_junk_query(ctx: Ctx) -> Result:
    folder = ctx.folder("junk_query")
    market_tree(folder / "data", query_ids=[-1])
    return expect_error(ctx.run("eval", "--model", "osnet_x0_25", "--data", "market1501", "--root",
                                str(folder / "data"), "--size", "64x32", "--output", str(folder / "e")),
                        "0 query")


# ---------------------------------------------------------------------------------------------
# files that are not what they claim to be


def _weights_case(ctx: Ctx, name: str, content: bytes, fragment: str) -> Result:
    folder = ctx.folder(name.replace(".", "_"))
    (folder / name).write_bytes(content)
    return expect_error(ctx.run("info", "osnet_x0_25", "--weights", str(folder / name)), str(folder / name), fragment)


def truncated_safetensors(ctx: Ctx) -> Result:
    folder = ctx.folder("st_src")
    code = ("import sys; from omnireid.models import create_model, save_weights; "
            "save_weights(create_model('osnet_x0_25'), sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(folder / "w.safetensors")], check=True, env=ctx.env)
    data = (folder / "w.safetensors").read_bytes()
    return _weights_case(ctx, "cut.safetensors", data[: len(data) // 3], "not a readable safetensors file")


def pickled_safetensors(ctx):
    return _weights_case(ctx, "p.safetensors", pickle.dumps({"w": [1, 2]}), "not a readable safetensors file")


def text_as_pth(ctx):
    return _weights_case(ctx, "notes.pth", b"epoch 1: loss 2.3\n", "not a readable checkpoint")


def binary_as_csv(ctx: Ctx) -> Result:
    folder = ctx.folder("bin_csv")
    (folder / "m.csv").write_bytes(bytes(range(256)) * 8)
    return expect_error(ctx.run("data", "summary", "csv_manifest", "--root", str(folder / "m.csv")),
                        "m.csv", "not a text CSV file")


def binary_as_yaml(ctx: Ctx) -> Result:
    folder = ctx.folder("bin_yaml")
    (folder / "r.yaml").write_bytes(bytes(range(128, 256)) * 8)
    return expect_error(ctx.run("train", "-c", str(folder / "r.yaml")), "r.yaml", "not a text file")


def _gallery(ctx: Ctx, name: str) -> Path:
    folder = ctx.folder(name)
    for i in range(3):
        (folder / "g" / f"{i}.jpg").parent.mkdir(parents=True, exist_ok=True)
        (folder / "g" / f"{i}.jpg").write_bytes(person_jpeg(i, 0, 0))
    (folder / "q.jpg").write_bytes(person_jpeg(1, 1, 0))
    ctx.run("extract", str(folder / "g"), "-o", str(folder / "g.npz"), "--model", "osnet_x0_25",
            "--weights", str(model_file(ctx)), "--input", "64x32")
    return folder


def truncated_gallery(ctx: Ctx) -> Result:
    folder = _gallery(ctx, "gallery_cut")
    data = (folder / "g.npz").read_bytes()
    (folder / "g.npz").write_bytes(data[: len(data) // 2])
    return expect_error(ctx.run("search", str(folder / "q.jpg"), "--gallery", str(folder / "g.npz"),
                                "--report", str(folder / "rep")), "g.npz")


def gallery_dimension_mismatch(ctx: Ctx) -> Result:
    folder = _gallery(ctx, "gallery_dims")
    # a well-formed gallery of 100-d embeddings (e.g. made by another model) that records osnet_x0_25
    code = ("import sys, numpy as np; from omnireid.inference.gallery import Gallery; g = Gallery.load(sys.argv[1]); "
            "e = np.random.default_rng(0).normal(size=(len(g), 100)).astype('float32'); "
            "Gallery(e, g.paths, g.root, g.meta).save(sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(folder / "g.npz")], check=True, env=ctx.env)
    return expect_error(ctx.run("search", str(folder / "q.jpg"), "--gallery", str(folder / "g.npz"),
                                "--report", str(folder / "rep")), "100-d", "disagree")


def gallery_nan_embeddings(ctx: Ctx) -> Result:
    folder = _gallery(ctx, "gallery_nan")
    # NaN written with a valid checksum (behind the gallery's back), so the load-time check is the one tested
    code = ("import sys, numpy as np; from omnireid.inference.gallery import Gallery; g = Gallery.load(sys.argv[1]); "
            "g.embeddings[:] = np.nan; g.save(sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(folder / "g.npz")], check=True, env=ctx.env)
    return expect_error(ctx.run("search", str(folder / "q.jpg"), "--gallery", str(folder / "g.npz"),
                                "--report", str(folder / "rep")), "g.npz")


def extract_without_weights(ctx: Ctx) -> Result:
    folder = ctx.folder("extract_random")
    (folder / "g").mkdir()
    (folder / "g" / "a.jpg").write_bytes(person_jpeg(1, 0, 0))
    return expect_error(ctx.run("extract", str(folder / "g"), "-o", str(folder / "g.npz"), "--model",
                                "osnet_x0_25", "--input", "64x32"), "--weights", kind="refused")


def gallery_from_another_folder(ctx: Ctx) -> Result:
    """Extracted with a relative --weights path, then searched from another folder."""
    folder = _gallery(ctx, "gallery_moved")
    shutil.copy(model_file(ctx), folder / "w.pth")
    ctx.run("extract", "g", "-o", "g.npz", "--model", "osnet_x0_25", "--weights", "w.pth", "--input", "64x32",
            cwd=folder)
    elsewhere = ctx.folder("gallery_moved_cwd")
    proc = ctx.run("search", str(folder / "q.jpg"), "--gallery", str(folder / "g.npz"), "--report",
                   str(elsewhere / "rep"), cwd=elsewhere)
    return recovered(proc, proc.returncode == 0, "searched from another folder (relative --weights at extraction)")


def gallery_other_weights(ctx: Ctx) -> Result:
    folder = _gallery(ctx, "gallery_other_weights")
    other = folder / "other.pth"
    code = ("import sys, torch; from omnireid.models import create_model, save_weights; torch.manual_seed(5); "
            "save_weights(create_model('osnet_x0_25'), sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(other)], check=True, env=ctx.env)
    return expect_error(ctx.run("search", str(folder / "q.jpg"), "--gallery", str(folder / "g.npz"), "--weights",
                                str(other), "--report", str(folder / "rep")), "g.npz", "sha256",
                        "cannot be compared", kind="refused")


# ---------------------------------------------------------------------------------------------
# disks, interruptions


def _mount(path: Path, options: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True)


def full_disk(ctx: Ctx) -> Result:
    r, _ = train_recipe(ctx, "full_disk")
    target = ctx.work / "full_disk" / "small"
    if _mount(target, "size=1500k"):
        how = "a 1.5 MB tmpfs"
        try:
            proc = ctx.run("train", "-c", str(r), "-o", str(target / "run"))
            leftovers = [p.name for p in (target / "run").iterdir() if ".tmp" in p.name] if (target / "run").exists() else []
        finally:
            _umount(target)
    else:
        import resource

        how = "a 1.5 MB file-size limit"
        target.mkdir(parents=True, exist_ok=True)

        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1_500_000, 1_500_000))

        proc = ctx.run("train", "-c", str(r), "-o", str(target / "run"), preexec_fn=limit)
        leftovers = [p.name for p in (target / "run").iterdir() if ".tmp" in p.name] if (target / "run").exists() else []
    if leftovers:
        return Result("silent", f"temporary files left ({how}): {leftovers}")
    res = expect_error(proc, "cannot write", str(target / "run"))
    res.message = f"[{how}] {res.message}"
    return res


def read_only_folder(ctx: Ctx) -> Result:
    r, _ = train_recipe(ctx, "read_only")
    target = ctx.work / "read_only" / "ro"
    if _mount(target, "size=1m,ro"):
        how = "a read-only tmpfs"
        try:
            proc = ctx.run("train", "-c", str(r), "-o", str(target / "run"))
        finally:
            _umount(target)
    else:
        how = "a folder without write permission"
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(0o555)
        try:
            proc = ctx.run("train", "-c", str(r), "-o", str(target / "run"))
        finally:
            target.chmod(0o755)
    res = expect_error(proc, "cannot write", str(target))
    res.message = f"[{how}] {res.message}"
    return res


def kill9_then_resume(ctx: Ctx) -> Result:
    r, out = train_recipe(ctx, "kill9", train={"max_epoch": 30, "max_steps_per_epoch": 2, "eval_freq": -1})
    proc = ctx.popen("train", "-c", str(r))
    deadline = time.time() + 180
    while not (out / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.kill()
    proc.communicate()
    stale = out / ".last.pt.999999.tmp"  # what a write cut by kill -9 leaves (pid of the dead writer)
    stale.write_bytes(b"torn")
    res = ctx.run("train", "-c", str(r), "--resume", "--set", "train.max_epoch=3")
    ok = not stale.exists() and res.returncode == 0 and checkpoint_finite(ctx, out / "last.pt")
    return recovered(res, ok, "resumed; the stale temporary file of the killed write was removed" if ok else "temp kept")


def ctrl_c(ctx: Ctx) -> Result:
    r, out = train_recipe(ctx, "ctrl_c", train={"max_epoch": 30, "max_steps_per_epoch": 2, "eval_freq": -1})
    # as from a terminal: SIGINT not ignored even when this script runs in the background (`cmd &`
    # in a script makes a child ignore SIGINT, and Python then never raises KeyboardInterrupt)
    proc = ctx.popen("train", "-c", str(r), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 180
    while not (out / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    if "Traceback" in stderr:
        return Result("traceback", first_error_line(stderr))
    line = next((ln for ln in stderr.splitlines() if "interrupted" in ln), "")
    if proc.returncode == 130 and "last.pt" in line:
        return Result("clear error", line)
    return expect_error(done, "last.pt")


def sigterm(ctx: Ctx) -> Result:
    """A job scheduler (or `docker stop`) stops the run with SIGTERM: it should end like Ctrl-C,
    naming the checkpoint, leaving no temporary file, and resume."""
    r, out = train_recipe(ctx, "sigterm", train={"max_epoch": 30, "max_steps_per_epoch": 2, "eval_freq": -1})
    proc = ctx.popen("train", "-c", str(r))
    deadline = time.time() + 180
    while not (out / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    if "Traceback" in stderr:
        return Result("traceback", first_error_line(stderr))
    line = next((ln for ln in stderr.splitlines() if "SIGTERM" in ln), "")
    if proc.returncode != 143 or "last.pt" not in line:
        return Result("cryptic", f"exit {proc.returncode}: {line or stderr.strip()[-200:]}")
    temps = [p.name for p in out.iterdir() if p.name.endswith(".tmp") or ".tmp" in p.name]
    if temps:
        return Result("cryptic", f"{line} (left {temps})")
    # the signal may fall between the checkpoint and its line in metrics.jsonl: the checkpoint
    # holds one epoch more at most, and a resume rewrites metrics.jsonl from it
    target = _epochs_logged(out) + 2
    again = ctx.run("train", "-c", str(r), "--resume", "--set", f"train.max_epoch={target}")
    if again.returncode != 0:
        return expect_error(again, "resume")
    if _epochs_logged(out) != target:
        return Result("data loss", f"{line}; after --resume metrics.jsonl has {_epochs_logged(out)} of {target} epochs")
    return Result("clear error", line)


def _epochs_logged(out: Path) -> int:
    path = out / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def unknown_target(ctx: Ctx) -> Result:
    r, out = train_recipe(ctx, "unknown_target")
    proc = ctx.run("train", "-c", str(r), "--set", "data.targets=[market1501, cuhk3]")
    if (out / "last.pt").exists():
        return Result("data loss", "trained before the unknown target was reported")
    return expect_error(proc, "cuhk3", "cuhk03")


# ---------------------------------------------------------------------------------------------
# nonsense values


def _usage(option: str, *argv: str) -> Callable[[Ctx], Result]:
    def run(ctx: Ctx) -> Result:
        return expect_usage_error(ctx.run(*argv), option)
    return run


def train_tiny_input(ctx: Ctx) -> Result:
    r, _ = train_recipe(ctx, "tiny_input")
    return expect_error(ctx.run("train", "-c", str(r), "--set", "data.height=8", "--set", "data.width=4"),
                        "data.height=8 is too small")


def cuda_without_gpu(ctx: Ctx) -> Result:
    import torch

    if torch.cuda.is_available():
        return Result("n/a", "this machine has a GPU")
    return expect_usage_error(ctx.run("eval", "--model", "osnet_x0_25", "--data", "market1501", "--device", "cuda"),
                              "--device")


def nas_origin(ctx: Ctx) -> Result:
    return expect_error(ctx.run("nas", "--set", "nas.mode=foo", "--set", "train.max_epoch=2", "-o",
                                str(ctx.work / "nas")), "--set nas.mode=foo: nas.mode='foo'")


def amp_origin(ctx: Ctx) -> Result:
    r, _ = train_recipe(ctx, "amp_origin")
    return expect_error(ctx.run("train", "-c", str(r), "--set", "train.amp=bf32"), "--set train.amp=bf32: ")


# ---------------------------------------------------------------------------------------------
# torchreid checkpoints


TORCHREID_WRITER = """
import sys, numpy as np, torch
from omnireid.models import create_model
from omnireid.models.weights import to_torchreid
torch.manual_seed(0)
m = create_model('osnet_x0_25', num_classes=5)
opt = torch.optim.Adam(m.parameters(), lr=0.0015, amsgrad=True)
m(torch.randn(2, 3, 64, 32)).logits.sum().backward(); opt.step()
sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[20, 40])
cmc = np.asarray([0.5, 0.7], dtype=np.float32)
state = {'state_dict': to_torchreid(m.state_dict(), m.arch), 'epoch': 60, 'rank1': cmc[0],
         'optimizer': opt.state_dict(), 'scheduler': sched.state_dict()}
if sys.argv[2] == 'evil':
    state['payload'] = np.array(['x'], dtype=object)
torch.save(state, sys.argv[1])
"""


def torchreid_training_checkpoint(ctx: Ctx) -> Result:
    folder = ctx.folder("torchreid_ckpt")
    subprocess.run([sys.executable, "-c", TORCHREID_WRITER, str(folder / "model.pth.tar-60"), "good"],
                   check=True, env=ctx.env)
    m = manifest(folder / "d", train_ids=range(0))
    proc = ctx.run("eval", "--model", "osnet_x0_25", "--weights", str(folder / "model.pth.tar-60"), "--size",
                   "64x32", "--data", f"[{{name: csv_manifest, root: {m}}}]", "--num-vis", "0", "--output",
                   str(folder / "e"))
    ok = "training checkpoint of epoch 60" in proc.stdout
    return recovered(proc, ok, "loaded (epoch 60, rank1 0.5) and evaluated" if ok else proc.stdout[-200:])


def torchreid_checkpoint_with_objects(ctx: Ctx) -> Result:
    folder = ctx.folder("torchreid_evil")
    subprocess.run([sys.executable, "-c", TORCHREID_WRITER, str(folder / "model.pth.tar-60"), "evil"],
                   check=True, env=ctx.env)
    proc = ctx.run("info", "osnet_x0_25", "--weights", str(folder / "model.pth.tar-60"))
    if "\x1b[" in proc.stderr:
        return Result("cryptic", "terminal control codes in the message")
    return expect_error(proc, "refused to load", kind="refused")


# ---------------------------------------------------------------------------------------------
# beyond the original list


def empty_manifest(ctx: Ctx) -> Result:
    folder = ctx.folder("m_empty")
    (folder / "m.csv").write_text("path,pid,camid,split\n")
    return expect_error(ctx.run("data", "summary", "csv_manifest", "--root", str(folder / "m.csv")), "m.csv", "no rows")


def missing_listed_image(ctx: Ctx) -> Result:
    folder = ctx.folder("m_missing")
    m = manifest(folder)
    (folder / "images" / "0002_1_1.jpg").unlink()
    return expect_error(ctx.run("data", "summary", "csv_manifest", "--root", str(m)), "0002_1_1.jpg", "do not exist")


def zero_byte_training_image(ctx: Ctx) -> Result:
    folder = ctx.folder("zero_byte")
    m = manifest(folder / "d", test_ids=range(0))
    (folder / "d" / "images" / "0003_0_1.jpg").write_bytes(b"")
    r = recipe(folder / "r.yaml", folder / "run", [{"name": "csv_manifest", "root": str(m)}], ["synthetic_a"],
               train={"eval_freq": -1, "max_steps_per_epoch": 0, "max_epoch": 1})
    proc = ctx.run("train", "-c", str(r))
    tsv = folder / "run" / "skipped_images.tsv"
    ok = tsv.exists() and "0003_0_1.jpg" in tsv.read_text()
    return recovered(proc, ok, "skipped and listed" if ok else "not listed")


def two_targets_same_name(ctx: Ctx) -> Result:
    d = base_data(ctx)
    r, _ = train_recipe(ctx, "same_name", targets=[{"name": "csv_manifest", "root": str(d["test"])},
                                                  {"name": "csv_manifest", "root": str(d["train"])}])
    return expect_error(ctx.run("train", "-c", str(r)), "two datasets are named 'csv_manifest'")


def misspelt_reader_option(ctx: Ctx) -> Result:
    d = base_data(ctx)
    r, _ = train_recipe(ctx, "misspelt_option",
                        targets=[{"name": "csv_manifest", "root": str(d["test"]), "duplicate": "drop"}])
    return expect_error(ctx.run("train", "-c", str(r)), "Did you mean 'duplicates'", "r.yaml")


def smaller_than_one_batch(ctx: Ctx) -> Result:
    r, _ = train_recipe(ctx, "one_batch", data={"batch_size": 64})
    return expect_error(ctx.run("train", "-c", str(r)), "fewer than one batch", "data.batch_size")


def identity_sampler_too_few_ids(ctx: Ctx) -> Result:
    # 24 images of 6 identities: enough images for a batch of 16, not the 8 identities it needs
    r, _ = train_recipe(ctx, "few_ids", data={"sampler": "identity", "batch_size": 16, "num_instances": 2})
    return expect_error(ctx.run("train", "-c", str(r)), "identities")


def resume_from_non_finite_checkpoint(ctx: Ctx) -> Result:
    r, out = train_recipe(ctx, "resume_nan")
    ctx.run("train", "-c", str(r))
    code = ("import sys, torch; s = torch.load(sys.argv[1], weights_only=True); "
            "next(iter(s['model'].values())).fill_(float('nan')); torch.save(s, sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(out / "last.pt")], check=True, env=ctx.env)
    return expect_error(ctx.run("train", "-c", str(r), "--resume", "--set", "train.max_epoch=3"),
                        "last.pt", "non-finite", kind="refused")


def resume_before_first_checkpoint(ctx: Ctx) -> Result:
    r, out = train_recipe(ctx, "resume_early")
    out.mkdir(parents=True)
    (out / "config.yaml").write_text("{}\n")
    return expect_error(ctx.run("train", "-c", str(r), "--resume"), "nothing to resume", "last.pt")


def weights_of_another_width(ctx: Ctx) -> Result:
    folder = ctx.folder("other_width")
    code = ("import sys; from omnireid.models import create_model, save_weights; "
            "save_weights(create_model('osnet_x0_5'), sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(folder / "w.pth")], check=True, env=ctx.env)
    return expect_error(ctx.run("info", "osnet_x0_25", "--weights", str(folder / "w.pth")), "w.pth", "shape mismatches")


def odd_image_modes(ctx: Ctx) -> Result:
    folder = ctx.folder("odd_modes")
    imgs = folder / "g"
    imgs.mkdir()
    arr = np.random.default_rng(0).integers(0, 256, (64, 32, 3), dtype=np.uint8)
    Image.fromarray(arr).convert("L").save(imgs / "gray.png")
    Image.fromarray(arr).convert("CMYK").save(imgs / "cmyk.jpg")
    Image.fromarray(arr[:, :, 0].astype(np.uint16) * 257).save(imgs / "sixteen.png")
    Image.fromarray(arr).convert("P").save(imgs / "palette.png")
    proc = ctx.run("extract", str(imgs), "-o", str(folder / "g.npz"), "--model", "osnet_x0_25", "--weights",
                   str(model_file(ctx)), "--input", "64x32")
    ok = "embedded 4 of 4 images" in proc.stdout
    return recovered(proc, ok, "grayscale, CMYK, 16-bit and palette images embedded" if ok else proc.stdout[-200:])


def manifest_with_bom(ctx: Ctx) -> Result:
    folder = ctx.folder("m_bom")
    m = manifest(folder)
    m.write_bytes(b"\xef\xbb\xbf" + m.read_bytes())
    proc = ctx.run("data", "summary", "csv_manifest", "--root", str(m))
    return recovered(proc, "train" in proc.stdout, "read (the byte-order mark is ignored)")


def output_is_a_file(ctx: Ctx) -> Result:
    r, _ = train_recipe(ctx, "output_file")
    target = ctx.work / "output_file" / "not_a_folder"
    target.write_text("x")
    return expect_error(ctx.run("train", "-c", str(r), "-o", str(target)), str(target))


def resume_and_overwrite(ctx: Ctx) -> Result:
    r, _ = train_recipe(ctx, "resume_overwrite")
    return expect_error(ctx.run("train", "-c", str(r), "--resume", "--overwrite"), "--resume and --overwrite")


def missing_arch_spec(ctx: Ctx) -> Result:
    r, _ = train_recipe(ctx, "missing_arch")
    return expect_error(ctx.run("train", "-c", str(r), "--set", "model.arch=nowhere/child.json"), "child.json")


def yaml_syntax_error(ctx: Ctx) -> Result:
    folder = ctx.folder("yaml_syntax")
    (folder / "r.yaml").write_text("train:\n  max_epoch: 3\n   amp: bf16\n")
    return expect_error(ctx.run("train", "-c", str(folder / "r.yaml")), "r.yaml", "line 3")


def folder_as_weights(ctx: Ctx) -> Result:
    folder = ctx.folder("folder_weights")
    (folder / "w").mkdir()
    return expect_error(ctx.run("info", "osnet_x0_25", "--weights", str(folder / "w")), "is a folder")


def html_as_weights(ctx: Ctx) -> Result:
    """A download that saved a sign-in or quota page under the checkpoint's name."""
    folder = ctx.folder("html_weights")
    (folder / "osnet_x0_25_msmt17.pth").write_text("<!DOCTYPE html><html><body>Google Drive - quota exceeded"
                                                   "</body></html>\n")
    return expect_error(ctx.run("info", "osnet_x0_25", "--weights", str(folder / "osnet_x0_25_msmt17.pth")),
                        "osnet_x0_25_msmt17.pth", "HTML page")


def missing_query_file(ctx: Ctx) -> Result:
    folder = _gallery(ctx, "missing_query")
    return expect_error(ctx.run("search", str(folder / "nope.jpg"), "--gallery", str(folder / "g.npz"),
                                "--report", str(folder / "rep")), "nope.jpg")


def missing_data_root(ctx: Ctx) -> Result:
    r, _ = train_recipe(ctx, "missing_root", sources=["market1501"])
    return expect_error(ctx.run("train", "-c", str(r), "--set", f"data.root={ctx.work / 'no_such_root'}"),
                        "no_such_root", "Expected layout")


def lock_of_a_killed_run(ctx: Ctx) -> Result:
    r, out = train_recipe(ctx, "killed_lock", train={"max_epoch": 30, "eval_freq": -1})
    proc = ctx.popen("train", "-c", str(r))
    deadline = time.time() + 180
    while not (out / ".omnireid.lock").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.kill()
    proc.communicate()
    again = ctx.run("train", "-c", str(r), "--overwrite", "--set", "train.max_epoch=1")
    return recovered(again, again.returncode == 0, "the lock went with the killed process; --overwrite started afresh")


def overwrite_keeps_other_files(ctx: Ctx) -> Result:
    r, out = train_recipe(ctx, "overwrite_keeps")
    ctx.run("train", "-c", str(r))
    (out / "my_notes.txt").write_text("keep me")
    proc = ctx.run("train", "-c", str(r), "--overwrite")
    ok = (out / "my_notes.txt").exists() and proc.returncode == 0
    return recovered(proc, ok, "previous run replaced; the user's own files kept" if ok else "notes removed")


def no_camera_protocol_mismatch(ctx: Ctx) -> Result:
    folder = ctx.folder("no_cams")
    rows = ["path,pid,camid,split"]
    for pid in range(3):
        for k in range(2):
            rel = f"images/{pid}_{k}.jpg"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(person_jpeg(pid, 0, k))
            rows.append(f"{rel},{pid},,{'query' if k == 0 else 'gallery'}")
    (folder / "m.csv").write_text("\n".join(rows) + "\n")
    return expect_error(ctx.run("eval", "--model", "osnet_x0_25", "--data", "csv_manifest", "--root",
                                str(folder / "m.csv"), "--protocol", "market", "--size", "64x32", "--output",
                                str(folder / "e")), "no camera ids")


# ---------------------------------------------------------------------------------------------

CASES = [
    Case("two runs on one output folder", "data loss", "refused", two_runs_one_folder),
    Case("new run into a finished run's folder", "data loss", "refused", new_run_into_finished_folder),
    Case("--resume --set model.name=osnet_ain_x0_25", "data loss", "refused", resume_other_model),
    Case("--resume --set optim.name=sgd", "data loss", "refused", resume_other_optimiser),
    Case("--set optim.lr=1e6 (BatchNorm statistics blow up)", "silently wrong", "clear error", huge_learning_rate),
    Case("--resume --set optim.lr=0.1", "silently wrong", "recovered", resume_with_new_lr),
    Case("extract without --weights", "silently wrong", "refused", extract_without_weights),
    Case("gallery with NaN embeddings", "silently wrong", "clear error", gallery_nan_embeddings),
    Case("manifest row ../x.jpg", "silently wrong", "clear error", manifest_outside_root),
    Case("manifest row /etc/hostname", "silently wrong", "clear error", manifest_absolute),
    Case("manifest duplicate rows", "silently wrong", "clear error", manifest_duplicates),
    Case("manifest duplicate rows, duplicates=drop", "silently wrong", "recovered", manifest_duplicates_dropped),
    Case("manifest: one file under two identities", "silently wrong", "clear error", manifest_two_identities),
    Case("gallery searched from another folder", "silently wrong", "recovered", gallery_from_another_folder),
    Case("decompression bomb in extract", "traceback", "recovered", bomb_in_extract),
    Case("decompression bomb in training data", "traceback", "recovered", bomb_in_training),
    Case("decompression bomb in data summary --verify", "traceback", "recovered", bomb_in_verify),
    Case("decompression bomb as a search query", "traceback", "clear error", bomb_as_search_query),
    Case("unreadable image in bounding_box_train", "traceback", "recovered", unreadable_training_image),
    Case("unreadable image in query", "traceback", "recovered", unreadable_query_image),
    Case("unreadable image, data.on_bad_image=error", "traceback", "clear error", unreadable_image_strict),
    Case("empty query set (target)", "cryptic", "clear error", empty_query_set),
    Case("all-junk query set", "cryptic", "clear error", all_junk_query),
    Case("truncated .safetensors", "traceback", "clear error", truncated_safetensors),
    Case("pickle named .safetensors", "traceback", "clear error", pickled_safetensors),
    Case("text file named .pth", "cryptic", "clear error", text_as_pth),
    Case("binary file as a CSV manifest", "cryptic", "clear error", binary_as_csv),
    Case("binary file as a YAML recipe", "cryptic", "clear error", binary_as_yaml),
    Case("truncated gallery .npz", "traceback", "clear error", truncated_gallery),
    Case("100-d gallery searched with a 512-d model", "cryptic", "clear error", gallery_dimension_mismatch),
    Case("full disk during training", "traceback", "clear error", full_disk),
    Case("read-only output folder", "traceback", "clear error", read_only_folder),
    Case("kill -9 during training, then --resume", "traceback", "recovered", kill9_then_resume),
    Case("Ctrl-C during training", "traceback", "clear error", ctrl_c),
    Case("unknown target dataset", "traceback", "clear error", unknown_target),
    Case("eval --size 0x0", "traceback", "clear error", _usage("--size", "eval", "--model", "osnet_x0_25",
                                                              "--data", "market1501", "--size", "0x0")),
    Case("train data.height=8 data.width=4", "traceback", "clear error", train_tiny_input),
    Case("eval --size 8x4", "traceback", "clear error", _usage("--size", "eval", "--model", "osnet_x0_25",
                                                              "--data", "market1501", "--size", "8x4")),
    Case("--device cuda without a GPU", "traceback", "clear error", cuda_without_gpu),
    Case("bench --threads -1", "traceback", "clear error", _usage("--threads", "bench", "--threads", "-1")),
    Case("eval --batch-size 0", "traceback", "clear error", _usage("--batch-size", "eval", "--model",
                                                                  "osnet_x0_25", "--data", "market1501",
                                                                  "--batch-size", "0")),
    Case("bench --batch-sizes 0", "traceback", "clear error", _usage("--batch-sizes", "bench", "--batch-sizes", "0")),
    Case("bench --batch-sizes abc", "traceback", "clear error", _usage("--batch-sizes", "bench", "--batch-sizes", "abc")),
    Case("bench --rounds 0", "traceback", "clear error", _usage("--rounds", "bench", "--rounds", "0")),
    Case("invalid nas.* value blamed on its own --set", "cryptic", "clear error", nas_origin),
    Case("--set train.amp=bf32 blamed on the command line", "cryptic", "clear error", amp_origin),
    Case("torchreid model.pth.tar-60 (numpy rank1)", "traceback", "recovered", torchreid_training_checkpoint),
    Case("torchreid checkpoint holding other objects", "cryptic", "refused", torchreid_checkpoint_with_objects),
    # beyond the original list
    Case("manifest with a header only", "added", "clear error", empty_manifest, added=True),
    Case("manifest lists a missing image", "added", "clear error", missing_listed_image, added=True),
    Case("zero-byte training image", "added", "recovered", zero_byte_training_image, added=True),
    Case("two targets with one display name", "added", "clear error", two_targets_same_name, added=True),
    Case("misspelt reader option (duplicate:)", "added", "clear error", misspelt_reader_option, added=True),
    Case("training set smaller than one batch", "added", "clear error", smaller_than_one_batch, added=True),
    Case("identity sampler with too few identities", "added", "clear error", identity_sampler_too_few_ids,
         added=True),
    Case("--resume from a checkpoint holding NaN", "added", "refused", resume_from_non_finite_checkpoint, added=True),
    Case("--resume before the first checkpoint", "added", "clear error", resume_before_first_checkpoint, added=True),
    Case("weights of another width", "added", "clear error", weights_of_another_width, added=True),
    Case("grayscale/CMYK/16-bit/palette images", "added", "recovered", odd_image_modes, added=True),
    Case("manifest with a UTF-8 byte-order mark", "added", "recovered", manifest_with_bom, added=True),
    Case("output folder is an existing file", "added", "clear error", output_is_a_file, added=True),
    Case("--resume together with --overwrite", "added", "clear error", resume_and_overwrite, added=True),
    Case("model.arch spec file missing", "added", "clear error", missing_arch_spec, added=True),
    Case("search query file missing", "added", "clear error", missing_query_file, added=True),
    Case("data.root does not exist", "added", "clear error", missing_data_root, added=True),
    Case("SIGTERM during training (a job scheduler stops it), then --resume", "added", "clear error", sigterm,
         added=True),
    Case("recipe with a YAML syntax error", "added", "clear error", yaml_syntax_error, added=True),
    Case("a folder given as --weights", "added", "clear error", folder_as_weights, added=True),
    Case("an HTML page saved as the .pth (failed download)", "added", "clear error", html_as_weights, added=True),
    Case("gallery searched with other weights", "added", "refused", gallery_other_weights, added=True),
    Case("lock left by a killed run", "added", "recovered", lock_of_a_killed_run, added=True),
    Case("--overwrite keeps the user's own files", "added", "recovered", overwrite_keeps_other_files, added=True),
    Case("market protocol on data without cameras", "added", "clear error", no_camera_protocol_mismatch, added=True),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cli", default=None, help="the command to test (default: `omnireid` on PATH, else "
                                               "`python -m omnireid`)")
    p.add_argument("--only", default=None, help="run the cases whose name contains this text")
    p.add_argument("--work", default=None, help="scratch folder (default: a new temporary folder)")
    p.add_argument("--markdown", default=None, help="also write the table as Markdown to this file")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per command")
    a = p.parse_args()
    cli = shlex.split(a.cli) if a.cli else ([shutil.which("omnireid")] if shutil.which("omnireid")
                                            else [sys.executable, "-m", "omnireid"])
    work = Path(a.work or tempfile.mkdtemp(prefix="omnireid_faults_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMNIREID_NO_TCMALLOC="1", OMP_NUM_THREADS="1", OMNIREID_CACHE=str(work / "cache"))
    ctx = Ctx(cli, work, env, a.timeout)
    cases = [c for c in CASES if not a.only or a.only in c.name]
    rows = []
    start = time.time()
    for case in cases:
        t0 = time.time()
        try:
            result = case.run(ctx)
        except subprocess.TimeoutExpired:
            result = Result("silent", f"no answer within {a.timeout:.0f} s")
        except Exception as exc:  # a broken case, not a product failure: say so
            result = Result("case error", f"{type(exc).__name__}: {exc}")
        rows.append((case, result))
        mark = "ok " if result.outcome not in FAILURES and result.outcome != "case error" else "XX "
        print(f"{mark}{case.name}: {result.outcome} ({time.time() - t0:.0f} s) {_one_line(result.message)[:140]}",
              flush=True)
    print()
    table = render(rows)
    print(table)
    print(totals(rows), f"\n(run in {time.time() - start:.0f} s; scratch folder {work})")
    if a.markdown:
        Path(a.markdown).write_text(markdown(rows))


def _passed(case: Case, result: Result) -> bool:
    if result.outcome == "n/a":
        return True
    return result.outcome == case.expected


def _one_line(text: str) -> str:
    return " / ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _label(case: Case) -> str:
    return case.name + (" [pending]" if case.needs else "") + (" (+)" if case.added else "")


def render(rows) -> str:
    width = max(len(_label(c)) for c, _ in rows)
    lines = [f"{'case':{width}s}  {'expected':11s}  {'outcome':11s}  message",
             f"{'-' * width}  {'-' * 11}  {'-' * 11}  -------"]
    for case, res in rows:
        lines.append(f"{_label(case):{width}s}  {case.expected:11s}  {res.outcome:11s}  {_one_line(res.message)[:150]}")
    return "\n".join(lines)


def totals(rows) -> str:
    own = [(c, r) for c, r in rows if not c.needs]
    pending = [(c, r) for c, r in rows if c.needs]
    count: dict[str, int] = {}
    for _, r in own:
        count[r.outcome] = count.get(r.outcome, 0) + 1
    as_expected = sum(_passed(c, r) for c, r in own)
    added = sum(c.added for c, _ in rows)
    text = (f"{len(rows)} cases ({added} beyond the original list)"
            + (f"; {len(own)} counted" if pending else "") + f": {as_expected} as expected; outcomes "
            + ", ".join(f"{v} {k}" for k, v in sorted(count.items())) + ".")
    if pending:
        done = sum(_passed(c, r) for c, r in pending)
        text += (f" {len(pending)} pending case(s) need "
                 f"{', '.join(sorted({c.needs for c, _ in pending}))}: {done} already as expected.")
    return text


def markdown(rows) -> str:
    out = ["| case | group | expected | outcome | message |", "| --- | --- | --- | --- | --- |"]
    for case, res in rows:
        name = case.name + (" (pending)" if case.needs else "") + (" (added)" if case.added else "")
        msg = _one_line(res.message)[:200].replace("|", "\\|")
        out.append(f"| {name} | {case.group} | {case.expected} | {res.outcome} | {msg} |")
    return "\n".join(out) + "\n\n" + totals(rows) + "\n"


if __name__ == "__main__":
    main()
