"""``backend="auto"``: the fastest installed backend that meets the requested precision.

For ``precision="fp32"`` only exact paths qualify: their embeddings must lie within
:data:`EXACT_TOLERANCE` of the eager model's on a probe batch (relative to the largest embedding
value when that exceeds 1: trained OSNet embeddings reach values in the hundreds). ``"bf16"``
also admits the bf16 paths and ``"int8"`` the int8 ones, each only when it passes its accuracy
gate (:mod:`omnireid.inference.accuracy`). Among the qualifying paths the fastest, measured on
this machine at (at most :data:`MEASURE_MAX_BATCH` images of) the batch size asked for, wins.

The decision is cached as JSON in ``$OMNIREID_CACHE/autoselect`` (default
``~/.cache/omnireid/autoselect``; ``$OMNIREID_AUTOSELECT_CACHE`` moves only this cache) under a key made of everything the measurement depends on:
the model's architecture and weights, the input size, the batch size, the thread count, the
device, the CPU (model name and instruction-set flags), the versions of omnireid, torch, NumPy,
ONNX Runtime and OpenVINO, the precision and the candidates. Any change gives a new key, so a
new CPU or an upgraded library measures again. Exported and quantised graphs are cached beside
it (``models/``), keyed by the weights and input size (and calibration crops).

What the first decision costs is kept small: only candidates that can meet the precision are
built (fp32 builds no bf16 or int8 path and never quantises); the ONNX file is exported once and
shared by ONNX Runtime and OpenVINO; ``fused``, the most expensive candidate to build, is left
out when ``onnxruntime`` is exact (:data:`DOMINATED_BY`); the exactness check runs on two images;
and timing, warm-ups included, starts no round after :data:`MEASURE_BUDGET_S` seconds, on at
most :data:`MEASURE_MAX_BATCH` images a call. ``benchmarks/bench_autoselect.py`` measures it. A
cached decision builds only the chosen path (and re-checks that an fp32 path is exact).

The OpenVINO candidates are built with :func:`~omnireid.inference.runtime.stream_count` streams
for the batch size asked for (one per thread when each gets at least four images), and measured
that way.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from omnireid.errors import UsageError
from omnireid.files import write_json
from omnireid.inference.accuracy import GATE_SEED, check_accuracy
from omnireid.inference.export import export_onnx
from omnireid.inference.inputs import to_model_input
from omnireid.inference.preprocess import DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD
from omnireid.inference.quantize import (
    array_digest,
    calibration_batch,
    quantize_onnx_int8,
    synthetic_crops,
)
from omnireid.inference.runtime import (
    BACKEND_PRECISION,
    PRECISIONS,
    STREAMED_BACKENDS,
    Runner,
    available_backends,
    make_runner,
    stream_count,
)

logger = logging.getLogger(__name__)

CACHE_VERSION = 3
"""Part of every decision's key. 3: the measurement settles each runner before timing it
(:func:`measure_throughput`); decisions timed without that, which favoured ONNX Runtime over
OpenVINO, are measured again."""
EXACT_TOLERANCE = 1e-4
MEASURE_BUDGET_S = 2.0
"""Seconds of timing (warm-ups included) after which :func:`measure_throughput` starts no
further round."""
MEASURE_MAX_BATCH = 16
"""Images per timed call (fewer when the batch asked for is smaller). It was 8, chosen when
fused, onnxruntime and openvino ranked the same at 4, 8 and 16 images on the AMD EPYC measured.
With streams the ranking moves with the images per stream: osnet_x1_0 int8 on two threads
(two streams for OpenVINO), ``openvino-int8`` against ``onnxruntime-int8``, timed settled, was
185 / 243 and 188 / 246 img/s at 8 images but 329 / 237 and 312 / 257 at 16
(``benchmarks/bench_probe_size.py``), so ``auto`` for batch 16 took the slower path. Timing is
bounded by :data:`MEASURE_BUDGET_S`, so larger calls mean fewer rounds rather than a longer
decision (docs/deployment.md)."""
DOMINATED_BY = {"fused": "onnxruntime"}
"""Default candidates that are not built when the path they map to builds and is exact.
``fused`` (TorchScript tracing and freezing: the most expensive candidate to build, 1.5-3 s for
osnet_x1_0 here) ran slower than ``onnxruntime`` at fp32 in every measurement on x86 so far:
1.1-2.2x on AMD EPYC (benchmarks/README.md, 1 and 2 threads, batch 16 and 64) and 1.7x on Intel
Sapphire Rapids. Only applies on x86 and when ``candidates`` is not given."""
DROP_FACTOR = 4.0
"""A runner whose warm-up is this many times slower than the quickest one's is not timed."""
GATE_IDS = 64
"""Identities of the synthetic gate crops (two cameras each: 64 queries, 64 gallery images)."""

_LEVEL = {p: i for i, p in enumerate(PRECISIONS)}


@dataclass
class Candidate:
    """One backend as measured: ``images_per_s`` (0 when not timed), ``max_abs_diff`` to eager
    on the probe batch, ``gate`` (the accuracy gate's numbers for bf16/int8 paths), ``eligible``
    and a ``note`` saying why not."""

    backend: str
    precision: str
    images_per_s: float = 0.0
    max_abs_diff: float = float("nan")
    gate: dict | None = None
    eligible: bool = True
    note: str = ""


@dataclass
class Selection:
    """The outcome of :func:`select_backend`; ``runner`` runs the chosen path."""

    backend: str
    precision: str
    reason: str
    candidates: list[Candidate] = field(default_factory=list)
    from_cache: bool = False
    seconds: float = 0.0
    cache_file: str | None = None
    runner: Runner | None = field(default=None, repr=False)

    def table(self) -> list[dict]:
        return [asdict(c) for c in self.candidates]


# ------------------------------------------------------------------------------------------------
# what the key is made of


def cache_root() -> Path:
    """``$OMNIREID_AUTOSELECT_CACHE``, else ``$OMNIREID_CACHE``, else ``~/.cache/omnireid``."""
    base = os.environ.get("OMNIREID_AUTOSELECT_CACHE") or os.environ.get("OMNIREID_CACHE")
    return Path(base).expanduser() if base else Path.home() / ".cache" / "omnireid"


def cpu_signature() -> dict:
    """The CPU's model name, family/model/stepping and cache size, a digest of its
    instruction-set flags and the number of CPUs (a virtual machine may report only a generic
    name such as "AMD EPYC"; the family and model numbers still tell generations apart)."""
    name, flags, ident = "", "", {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = " ".join(sorted(value.split()))
        elif key in ("vendor_id", "cpu family", "model", "stepping", "cache size") \
                and key not in ident:
            ident[key] = value.strip()
    ident = {("model number" if k == "model" else k): v for k, v in ident.items()}
    return {"name": name or platform.processor() or platform.machine(), **ident,
            "flags": hashlib.sha256(flags.encode()).hexdigest()[:16], "cpus": os.cpu_count()}


def library_versions() -> dict:
    """Versions of the packages whose kernels run the backends (None where not installed)."""
    out = {}
    for dist in ("omnireid", "torch", "numpy", "onnxruntime", "onnx", "openvino"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    out["torch"] = torch.__version__
    return out


def model_digest(model: nn.Module) -> str:
    """Digest of the architecture (class, parameter and buffer names and shapes) and the
    weights' values."""
    h = hashlib.sha256(type(model).__name__.encode())
    for name, t in model.state_dict().items():
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:20]


def _key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


# ------------------------------------------------------------------------------------------------
# measurement (tests replace this function)


def measure_throughput(runners: dict[str, Runner], x: np.ndarray,
                       budget_s: float = MEASURE_BUDGET_S,
                       clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Images/s of each runner on ``x``, within a hard time budget.

    Every runner gets one warm-up call (two for TorchScript's ``fused``, which specialises on a
    new shape). A runner whose warm-up took more than :data:`DROP_FACTOR` times the quickest
    one's is not timed further (its rate is its last warm-up call's: it cannot win). The rest
    get one timed round each, interleaved; a runner more than twice as slow as the fastest in
    that round then stops, and the others run further rounds (at most seven) only while less
    than ``budget_s`` has passed since the first warm-up. The median round counts.

    A timed call always follows an untimed call of the same runner (one is added where the
    call before was another runner's): a runtime's worker threads keep spinning for a while
    after its call returns, and a call of another runtime made in that time runs on fewer cores
    (measured: OpenVINO right after ONNX Runtime at 250 instead of 420 images/s;
    :func:`omnireid.inference.bench.time_interleaved` has the numbers).

    So the measurement costs at most ``budget_s`` plus one round, or the warm-ups plus one
    round where those alone take longer; :func:`select_backend` keeps each call short by timing
    at most :data:`MEASURE_MAX_BATCH` images. ``clock`` is the timer (tests pass a fake one).
    """
    times: dict[str, list[float]] = {name: [] for name in runners}
    warm: dict[str, float] = {}
    start = clock()
    for name, run in runners.items():
        for _ in range(2 if name == "fused" else 1):
            t = clock()
            run(x)
            warm[name] = clock() - t
    quickest = min(warm.values())
    active = [n for n in runners if warm[n] <= DROP_FACTOR * quickest]
    rounds = 0
    last = next(reversed(runners), None)  # the last warm-up call's
    while rounds < 1 or (rounds < 7 and clock() - start < budget_s):
        for name in active:
            if name != last:
                runners[name](x)  # settle: the previous runtime's threads stop spinning
            t = clock()
            runners[name](x)
            times[name].append(clock() - t)
            last = name
        rounds += 1
        if rounds == 1 and len(active) > 1:
            best = min(times[n][0] for n in active)
            active = [n for n in active if times[n][0] <= 2 * best]
    return {name: len(x) / (statistics.median(t) if t else max(warm[name], 1e-9))
            for name, t in times.items()}


# ------------------------------------------------------------------------------------------------


def _exact(out: np.ndarray, ref: np.ndarray) -> tuple[bool, float]:
    diff = float(np.abs(out - ref).max())
    return diff <= EXACT_TOLERANCE * max(1.0, float(np.abs(ref).max())), diff


def _gate_batch(gate_crops, size, mean, std):
    crops = gate_crops if gate_crops is not None else synthetic_crops(GATE_IDS, 2, seed=GATE_SEED)
    batch = torch.stack([to_model_input(x, size, mean, std, name=f"gate crop #{i}")
                         for i, x in enumerate(crops.images)]).numpy()
    return batch, crops


def _features(run: Runner, batch: np.ndarray, step: int = 32) -> np.ndarray:
    return np.concatenate([run(batch[i:i + step]) for i in range(0, len(batch), step)])


def select_backend(
    model: nn.Module,
    size: tuple[int, int] = DEFAULT_SIZE,
    batch_size: int = 64,
    precision: str = "fp32",
    *,
    device: str | torch.device = "cpu",
    num_threads: int | None = None,
    micro_batch: int | str | None = "auto",
    calibration: np.ndarray | None = None,
    gate_crops=None,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    candidates: list[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    budget_s: float = MEASURE_BUDGET_S,
) -> Selection:
    """Choose and build the fastest backend for ``model`` that meets ``precision``.

    Args:
        model: eval-mode model whose forward returns a record with ``.embedding``.
        size, batch_size: the input size (H, W) and the batch size the runner will see.
        precision: ``"fp32"`` (exact paths only), ``"bf16"`` or ``"int8"`` (also the paths of
            that precision that pass their accuracy gate).
        num_threads: ONNX Runtime / OpenVINO threads (default: torch's thread count).
        calibration: ``(N, 3, H, W)`` preprocessed crops for int8 calibration (default: the
            synthetic crops).
        gate_crops: :class:`omnireid.inference.quantize.LabelledCrops` for the accuracy gate
            (default: synthetic crops).
        candidates: backends to consider (default: every installed one but ``eager``).
        cache_dir: cache folder (default :func:`cache_root`); ``use_cache=False`` measures anew
            and does not write.

    Returns:
        a :class:`Selection` whose ``runner`` maps ``(N, 3, H, W)`` float32 to ``(N, D)``.
    """
    start = time.perf_counter()
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    device = torch.device(device)
    model = model.eval()
    if device.type != "cpu":
        runner = make_runner("fused", model, size, device, micro_batch=micro_batch)
        reason = f"fused: only the PyTorch paths run on {device}"
        logger.info("backend auto: %s", reason)
        return Selection("fused", "fp32", reason, runner=runner,
                         seconds=time.perf_counter() - start)
    threads = int(num_threads or torch.get_num_threads())
    streams = stream_count(threads, batch_size)
    names = candidates or [b for b in available_backends() if b != "eager"]
    names = [b for b in names if _LEVEL[BACKEND_PRECISION[b]] <= _LEVEL[precision]]
    if not names:
        names = ["eager"]
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    digest = model_digest(model)
    calib_digest = None
    if calibration is not None:
        calib_digest = array_digest(calibration)
    key = {"version": CACHE_VERSION, "model": digest, "size": list(size), "batch": batch_size,
           "threads": threads, "device": str(device), "cpu": cpu_signature(),
           "libraries": library_versions(), "precision": precision, "candidates": names,
           "micro_batch": micro_batch, "streams": streams, "calibration": calib_digest,
           "gate_crops": None if gate_crops is None else _gate_digest(gate_crops)}
    cache_file = root / "autoselect" / f"{_key_digest(key)}.json"
    exports = root / "models" / f"{digest}-{size[0]}x{size[1]}"
    build = _Builder(model, size, threads, micro_batch, exports, calibration, calib_digest, streams)

    if use_cache and cache_file.is_file():
        record = _read_record(cache_file, key)
        if record is not None:
            chosen = record["backend"]
            try:
                runner = build(chosen)
                ok = True
                if BACKEND_PRECISION[chosen] == "fp32":
                    x = _probe(size)
                    ok, _ = _exact(runner(x), _eager_probe(model, size, x))
            except Exception as exc:  # noqa: BLE001 - a cached choice that no longer builds
                logger.info("cached choice %s no longer builds (%s); measuring again", chosen, exc)
                ok = False
            if ok:
                sel = Selection(chosen, BACKEND_PRECISION[chosen], record["reason"],
                                [Candidate(**c) for c in record["candidates"]], True,
                                time.perf_counter() - start, str(cache_file), runner)
                logger.info("backend auto: %s (cached decision, %s)", sel.reason, cache_file)
                return sel

    skipped, prebuilt, probe_ref = [], {}, None
    if candidates is None:
        skipped, prebuilt, probe_ref = _skip_dominated(names, build, model, size)
        names = [n for n in names if n not in {c.backend for c in skipped}]
    cands, runners = _build_candidates(names, build, prebuilt)
    _check_exact(model, size, cands, runners, probe_ref)
    cands += skipped
    x = np.random.default_rng(0).standard_normal(
        (min(batch_size, MEASURE_MAX_BATCH), 3, *size)).astype(np.float32)
    timed = {c.backend: runners[c.backend] for c in cands if c.eligible}
    best = None
    if timed:
        speeds = measure_throughput(timed, x, budget_s)
        for c in cands:
            c.images_per_s = float(speeds.get(c.backend, 0.0))
        best = _choose(cands, runners, speeds, model, size, gate_crops, mean, std)
    if best is None:  # nothing qualifies: eager is exact by definition
        runners["eager"] = make_runner("eager", model, size, micro_batch=micro_batch)
        speed = measure_throughput({"eager": runners["eager"]}, x, budget_s)["eager"]
        cands.append(Candidate("eager", "fp32", float(speed), max_abs_diff=0.0))
        best = "eager"
    reason = _reason(best, precision, cands, batch_size, threads, size, streams)
    seconds = time.perf_counter() - start
    sel = Selection(best, BACKEND_PRECISION[best], reason, cands, False, seconds,
                    str(cache_file) if use_cache else None, runners[best])
    if use_cache:
        _write_record(cache_file, {"key": key, "backend": best, "reason": reason,
                                   "candidates": sel.table(), "seconds": seconds,
                                   "created": time.strftime("%Y-%m-%d %H:%M:%S")})
    logger.info("backend auto: %s (measured in %.1f s)", reason, seconds)
    return sel


def _gate_digest(crops) -> str:
    h = hashlib.sha256()
    for img in crops.images:
        h.update(np.ascontiguousarray(img).tobytes())
    h.update(np.asarray(crops.pids).tobytes())
    h.update(np.asarray(crops.camids).tobytes())
    return h.hexdigest()[:16]


def _probe(size: tuple[int, int]) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((2, 3, *size)).astype(np.float32)


@contextlib.contextmanager
def one_torch_thread():
    """Run PyTorch on one intra-op thread for a while (process-wide), then restore the count.

    For the one-off work of a decision (tracing the ONNX export, eager's output on the two-image
    probe): that is mostly Python-side graph building, on which a second thread gains nothing,
    while on a machine whose cores are busy with other jobs two OpenMP threads wait on each
    other. Measured on the loaded AMD EPYC (benchmarks/README.md): the osnet_x1_0 export took
    0.8 CPU s on one thread and 6.6 on two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _eager_probe(model: nn.Module, size: tuple[int, int], x: np.ndarray) -> np.ndarray:
    """Eager's embeddings of the probe batch ``x`` (one thread: see :func:`one_torch_thread`;
    the thread count changes only the rounding, by about 1e-7, far inside
    :data:`EXACT_TOLERANCE`)."""
    with one_torch_thread():
        return make_runner("eager", model, size)(x)


class _Builder:
    """Builds runners, exporting (and quantising) once into the cache folder."""

    def __init__(self, model, size, threads, micro_batch, folder: Path, calibration,
                 calib_digest, streams: int = 1) -> None:
        self.model, self.size, self.threads, self.micro_batch = model, size, threads, micro_batch
        self.folder, self.calibration, self.calib_digest = folder, calibration, calib_digest
        self.streams = streams

    def onnx(self) -> Path:
        path = self.folder / "model.onnx"
        if not path.is_file():
            with one_torch_thread():
                export_onnx(self.model, path, self.size)
        return path

    def int8(self) -> Path:
        path = self.folder / f"model-int8-{self.calib_digest or 'synthetic'}.onnx"
        if not path.is_file():
            calib = self.calibration
            if calib is None:
                calib = calibration_batch(None, self.size, IMAGENET_MEAN, IMAGENET_STD)
            quantize_onnx_int8(self.onnx(), path, calib)
        return path

    def __call__(self, backend: str) -> Runner:
        if backend in ("eager", "fused", "bf16"):
            return make_runner(backend, self.model, self.size, micro_batch=self.micro_batch)
        path = self.int8() if backend.endswith("-int8") else self.onnx()
        streams = self.streams if backend in STREAMED_BACKENDS else 1
        return make_runner(backend, path, self.size, num_threads=self.threads, streams=streams)


def _skip_dominated(names: list[str], build, model: nn.Module, size: tuple[int, int]
                    ) -> tuple[list[Candidate], dict[str, Runner], np.ndarray | None]:
    """The default candidates not worth building: each path of :data:`DOMINATED_BY` whose
    dominating path builds and is exact (checked here, on the probe batch). Returns the skipped
    candidates (with a note), the runners built on the way and eager's output on the probe."""
    todo = {slow: fast for slow, fast in DOMINATED_BY.items() if slow in names and fast in names}
    if not todo or not _on_x86():
        return [], {}, None
    prebuilt, skipped = {}, []
    x = _probe(size)
    ref = None
    for slow, fast in todo.items():
        try:
            if fast not in prebuilt:
                prebuilt[fast] = build(fast)
            if ref is None:
                ref = _eager_probe(model, size, x)
            exact, _ = _exact(prebuilt[fast](x), ref)
        except Exception as exc:  # noqa: BLE001 - then the slower path is built as usual
            logger.info("backend %s: %s; building %s too", fast, exc, slow)
            prebuilt.pop(fast, None)
            continue
        if exact:
            skipped.append(Candidate(slow, BACKEND_PRECISION[slow], eligible=False,
                                     note=f"not built: {fast} is exact and was faster on "
                                          "every x86 CPU measured"))
    return skipped, prebuilt, ref


def _on_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def _build_candidates(names, build, prebuilt: dict[str, Runner] | None = None
                      ) -> tuple[list[Candidate], dict[str, Runner]]:
    cands, runners = [], {}
    for name in names:
        cand = Candidate(name, BACKEND_PRECISION[name])
        try:
            runners[name] = (prebuilt or {}).get(name) or build(name)
        except Exception as exc:  # noqa: BLE001 - a backend that fails to build is skipped
            cand.eligible = False
            cand.note = f"failed to build: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            logger.info("backend %s: %s", name, cand.note)
        cands.append(cand)
    return cands, runners


def gate_runner(model: nn.Module, runner: Runner, precision: str,
                size: tuple[int, int] = DEFAULT_SIZE, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                gate_crops=None, reference: Runner | None = None):
    """The accuracy gate (:func:`omnireid.inference.accuracy.check_accuracy`) of ``runner``
    against ``reference`` (default: the eager fp32 model) on ``gate_crops`` (default: the
    synthetic gate crops). Returns a :class:`~omnireid.inference.accuracy.GateResult`."""
    batch, crops = _gate_batch(gate_crops, size, mean, std)
    ref = _features(reference or make_runner("eager", model, size), batch)
    return check_accuracy(ref, _features(runner, batch), crops.pids, crops.camids, precision)


def _check_exact(model, size, cands, runners, ref: np.ndarray | None = None) -> None:
    """Exactness of every candidate on a probe batch (``ref``: eager's output on it, computed
    when not given); fp32 candidates that are not exact become ineligible."""
    x = _probe(size)
    if ref is None:
        ref = _eager_probe(model, size, x)
    for c in cands:
        if not c.eligible:
            continue
        exact, c.max_abs_diff = _exact(runners[c.backend](x), ref)
        if c.precision == "fp32" and not exact:
            c.eligible = False
            c.note = f"not exact: max |diff| to eager {c.max_abs_diff:.1e}"


def _choose(cands, runners, speeds, model, size, gate_crops, mean, std) -> str | None:
    """The fastest timed path that qualifies, fastest first: an fp32 one (already exact) is
    taken as it comes; a bf16/int8 one only if it passes its accuracy gate, run here, so that
    paths slower than the one taken are never gated (their note says so). None if none
    qualifies."""
    by_name = {c.backend: c for c in cands}
    order = sorted(speeds, key=lambda n: -speeds[n])
    reference = crops = batch = None
    best = None
    for name in order:
        c = by_name[name]
        if c.precision == "fp32":
            best = name
            break
        if reference is None:
            batch, crops = _gate_batch(gate_crops, size, mean, std)
            exact = [n for n in order if by_name[n].precision == "fp32"]
            reference = _features(runners[exact[0]] if exact
                                  else make_runner("eager", model, size), batch)
        result = check_accuracy(reference, _features(runners[name], batch), crops.pids,
                                crops.camids, c.precision)
        c.gate = result.to_dict()
        if result.passed:
            best = name
            break
        c.eligible = False
        c.note = f"accuracy gate failed: {result.reason}"
        logger.info("backend %s refused: %s", name, c.note)
    for name in order[order.index(best) + 1:] if best else []:
        if by_name[name].precision != "fp32":
            by_name[name].note = f"not gated: slower than {best}"
    return best


def _reason(best: str, precision: str, cands: list[Candidate], batch_size: int, threads: int,
            size: tuple[int, int], streams: int = 1) -> str:
    others = ", ".join(f"{c.backend} {c.images_per_s:.0f}" for c in
                       sorted(cands, key=lambda c: -c.images_per_s)
                       if c.backend != best and c.eligible)
    refused = "; ".join(f"{c.backend}: {c.note}" for c in cands if not c.eligible)
    chosen = next(c for c in cands if c.backend == best)
    what = (f"exact to {max(chosen.max_abs_diff, 1e-12):.0e}" if chosen.precision == "fp32"
            else f"{chosen.precision}, passed its accuracy gate")
    how = f"{threads} thread(s)"
    if streams > 1 and best in STREAMED_BACKENDS:
        how = f"{streams} streams x {threads // streams} thread(s)"
    text = (f"{best} for batch {batch_size} at {size[0]}x{size[1]}, {how}, "
            f"precision {precision}: the fastest that qualifies ({chosen.images_per_s:.0f} img/s, "
            f"{what}")
    text += f"; others: {others})" if others else ")"
    if refused:
        text += f"; not used: {refused}"
    return text


def _read_record(path: Path, key: dict) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("key") != json.loads(json.dumps(key)) or record.get("backend") not in BACKEND_PRECISION:
        return None
    return record


def _write_record(path: Path, record: dict) -> None:
    # a cache entry: no fsync needed, a lost entry is measured again
    write_json(path, record, indent=1, default=_jsonable, durable=False)


def _jsonable(value: object) -> object:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    return str(value)


__all__ = ["Candidate", "Selection", "cache_root", "cpu_signature", "gate_runner",
           "library_versions", "measure_throughput", "model_digest", "select_backend"]
