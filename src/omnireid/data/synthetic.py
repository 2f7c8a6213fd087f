"""A procedural multi-domain re-ID benchmark that needs no download.

Two families of domains share this generator:

- ``synthetic_a`` .. ``synthetic_d`` (generator version 3, unchanged since): each domain changes
  the people and the cameras at once;
- the controlled domain-shift sets ``synthetic_p1s1`` ... (generator version 5,
  :mod:`omnireid.data.synthetic_domains`): a domain is a population seen in a camera style, and
  either can change alone.

Each version-3 *domain* is a small city of people (identities drawn from the domain's clothing style: top
and bottom colours and patterns, body proportions, backpacks, bags, hats, hair) watched by several
*cameras* that each have a habitual viewpoint (front, back or side: a backpack is a block of colour
from behind and two straps from the front), a scale range, their own illumination, colour cast,
contrast, saturation, blur, noise, resolution, JPEG quality and scene. Domains differ in global
style (street daylight, dim CCTV, warm mall, washed-out winter), so a model trained on one loses
accuracy on another -- the setting instance normalisation is meant for.

The domain-shift sets draw everything about the people (identities, plan, poses) from streams
keyed by the population and everything photometric from streams keyed by the style, render at
twice the stored size and average down (anti-aliased), and are stored at 64x32 by default.

Images are written as JPEGs in the Market-1501 layout (``PID_cCs1_FRAME_NN.jpg``; gallery
distractors with id 0 and a few junk crops with id -1) and read back with the Market-1501 reader,
so synthetic and real data share one code path. Generation is deterministic: every identity,
camera and image draws from its own ``numpy`` generator seeded from ``(seed, domain, kind, index)``.

The cache lives in ``$OMNIREID_CACHE/synthetic`` (default ``~/.cache/omnireid/synthetic``); a
finished domain has a ``synthetic.json`` that records how it was made and is reused when the
parameters match.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from omnireid.data.synthetic_domains import (
    CAMERA_STYLES,
    POPULATIONS,
    SHIFT_DOMAINS,
    SHIFT_STREAMS,
    SHIFT_VERSION,
)
from omnireid.data.synthetic_render import (
    Camera,
    DomainStyle,
    Identity,
    Population,
    apply_camera,
    make_camera,
    make_identity,
    make_rig,
    make_styled_camera,
    render_person,
)
from omnireid.errors import UsageError
from omnireid.files import locked
from omnireid.progress import progress_bar

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 3
"""Generator version of ``synthetic_a`` .. ``synthetic_d`` (the domain-shift sets: ``SHIFT_VERSION``)."""

SHIFT_DEFAULTS: dict[str, object] = {"height": 64, "width": 32, "num_ids": 1000, "num_test_ids": 600}
"""Where the registered domain-shift sets differ from :class:`SyntheticSpec`'s defaults."""

_VIVID = (
    (0.85, 0.10, 0.10), (0.10, 0.35, 0.80), (0.10, 0.60, 0.20), (0.95, 0.85, 0.15), (0.95, 0.95, 0.95),
    (0.10, 0.10, 0.12), (0.55, 0.55, 0.58), (0.55, 0.30, 0.15), (0.90, 0.45, 0.10), (0.50, 0.15, 0.55),
    (0.15, 0.20, 0.40), (0.85, 0.55, 0.65),
)
_DARK = (
    (0.08, 0.08, 0.10), (0.20, 0.22, 0.28), (0.35, 0.35, 0.37), (0.15, 0.20, 0.35), (0.30, 0.12, 0.12),
    (0.70, 0.70, 0.72), (0.25, 0.30, 0.20), (0.45, 0.38, 0.30), (0.10, 0.25, 0.30), (0.55, 0.50, 0.45),
)

DOMAIN_STYLES: dict[str, DomainStyle] = {
    "a": DomainStyle(
        name="a", description="street in daylight: vivid clothes, mild colour casts, sharp cameras",
        palette=_VIVID,
        background=((0.55, 0.55, 0.55), (0.62, 0.60, 0.55), (0.45, 0.47, 0.50), (0.70, 0.72, 0.74), (0.40, 0.45, 0.38)),
        pattern_weights=(4, 1.5, 1, 1, 1.5, 1.5, 1), bottom_weights=(6, 2, 2),
        backpack_p=0.35, bag_p=0.25, hat_p=0.15,
        gain=(0.85, 1.2), cast=0.12, contrast=(0.85, 1.1), saturation=(0.8, 1.1), blur=(0.0, 0.8),
        noise=(0.005, 0.02), resolution=(0.6, 1.0), jpeg_quality=(80, 95), colour_jitter=0.05,
    ),
    "b": DomainStyle(
        name="b", description="dim indoor CCTV: dark clothes, strong blue/green casts, noise, low resolution",
        palette=_DARK,
        background=((0.20, 0.22, 0.25), (0.30, 0.30, 0.28), (0.15, 0.18, 0.15), (0.35, 0.33, 0.38)),
        pattern_weights=(6, 1, 1, 0.5, 1, 0.5, 0.5), bottom_weights=(8, 1, 1),
        backpack_p=0.45, bag_p=0.3, hat_p=0.25,
        gain=(0.55, 0.9), cast=0.3, contrast=(0.7, 1.0), saturation=(0.4, 0.8), blur=(0.5, 1.5),
        noise=(0.02, 0.05), resolution=(0.4, 0.7), jpeg_quality=(50, 75), colour_jitter=0.07,
    ),
    "c": DomainStyle(
        name="c", description="warm shopping mall: colourful scenes, coats and skirts, warm casts, high contrast",
        palette=_VIVID + ((0.95, 0.75, 0.55), (0.25, 0.65, 0.65)),
        background=((0.80, 0.65, 0.45), (0.60, 0.30, 0.25), (0.85, 0.80, 0.70), (0.35, 0.50, 0.60), (0.70, 0.55, 0.70)),
        pattern_weights=(2, 2, 2, 1.5, 1, 2, 2), bottom_weights=(4, 2, 4),
        backpack_p=0.2, bag_p=0.5, hat_p=0.1,
        gain=(0.9, 1.3), cast=0.2, contrast=(1.0, 1.35), saturation=(1.0, 1.4), blur=(0.0, 0.6),
        noise=(0.005, 0.015), resolution=(0.7, 1.0), jpeg_quality=(85, 95), colour_jitter=0.05,
    ),
    "d": DomainStyle(
        name="d", description="washed-out winter: pale scenes, over-exposure, low contrast, heavy clothes",
        palette=_DARK + ((0.80, 0.20, 0.20), (0.20, 0.40, 0.75)),
        background=((0.88, 0.90, 0.92), (0.75, 0.78, 0.82), (0.95, 0.95, 0.95), (0.60, 0.62, 0.66)),
        pattern_weights=(5, 1, 1, 1, 1, 1, 0.5), bottom_weights=(9, 0.5, 0.5),
        backpack_p=0.3, bag_p=0.2, hat_p=0.5,
        gain=(1.1, 1.5), cast=0.15, contrast=(0.55, 0.8), saturation=(0.6, 0.9), blur=(0.3, 1.2),
        noise=(0.01, 0.03), resolution=(0.5, 0.9), jpeg_quality=(60, 85), colour_jitter=0.06,
    ),
}


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate for one domain. The defaults are the registered ``synthetic_a`` .. ``d``;
    :meth:`registered` gives any registered domain's defaults (with overrides)."""

    domain: str = "a"
    seed: int = 0
    num_ids: int = 500  # identities in all; half for training, half for testing unless num_test_ids says
    num_cameras: int = 6
    cameras_per_id: tuple[int, int] = (2, 4)
    images_per_camera: tuple[int, int] = (1, 4)
    num_distractors: int = 100  # gallery images of people who are never queried (id 0)
    num_junk: int = 20  # gallery crops of background only (id -1)
    height: int = 128
    width: int = 64
    num_test_ids: int | None = None  # None: num_ids // 2 train, the rest test

    def __post_init__(self) -> None:
        if self.domain not in DOMAIN_STYLES and self.domain not in SHIFT_DOMAINS:
            raise UsageError(f"unknown synthetic domain {self.domain!r}; known: "
                             f"{sorted(DOMAIN_STYLES) + sorted(SHIFT_DOMAINS)}")
        if self.num_ids < 2 or self.num_ids > 1500:
            raise UsageError("num_ids must be in 2..1500 (the Market-1501 naming holds 4-digit ids)")
        if self.num_test_ids is not None and not 1 <= self.num_test_ids < self.num_ids:
            raise UsageError(f"num_test_ids must be in 1..num_ids-1, got {self.num_test_ids}")
        if not 2 <= self.num_cameras <= 6:
            raise UsageError("num_cameras must be in 2..6 (the Market-1501 layout)")
        lo, hi = self.cameras_per_id
        if not 2 <= lo <= hi <= self.num_cameras:
            raise UsageError(f"cameras_per_id must satisfy 2 <= low <= high <= num_cameras, got {self.cameras_per_id}")

    @classmethod
    def registered(cls, domain: str, **options) -> SyntheticSpec:
        """The registered spec of ``domain`` (``"a"``, ``"p1s2"``, ...) with ``options`` changed.

        Options that set ``num_ids`` without ``num_test_ids`` split the identities half and half
        (the registered test-split size belongs to the registered number of identities)."""
        defaults = dict(SHIFT_DEFAULTS) if domain in SHIFT_DOMAINS else {}
        if "num_ids" in options and "num_test_ids" not in options:
            defaults.pop("num_test_ids", None)
        return cls(domain=domain, **{**defaults, **options})

    @property
    def version(self) -> int:
        """The generator version that draws this domain."""
        return SHIFT_VERSION if self.domain in SHIFT_DOMAINS else GENERATOR_VERSION

    @property
    def num_train_ids(self) -> int:
        return self.num_ids // 2 if self.num_test_ids is None else self.num_ids - self.num_test_ids

    def as_dict(self) -> dict[str, object]:
        """The fields, leaving out ``num_test_ids`` when unset (so version-3 caches stay valid)."""
        d = asdict(self)
        if d["num_test_ids"] is None:
            del d["num_test_ids"]
        return d

    def key(self) -> str:
        """Folder name: ``synthetic_a`` for the registered spec, else with a short hash of the spec."""
        default = SyntheticSpec.registered(self.domain)
        if self == default:
            return f"synthetic_{self.domain}"
        digest = hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:10]
        return f"synthetic_{self.domain}-{digest}"


def default_cache_dir() -> Path:
    """``$OMNIREID_CACHE/synthetic`` or ``~/.cache/omnireid/synthetic``."""
    base = os.environ.get("OMNIREID_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "omnireid") / "synthetic"


# What each random stream draws. Version 3 keys all of them by the domain; the domain-shift sets
# key the people's streams by the population, the photometric ones by the style (and the camera
# rig by the seed alone), so that a style-only change leaves every person, pose and file alone.
_PLAN, _PERSON_PLAN, _CAMERA, _IMAGE, _IDENTITY, _RIG, _IMAGE_PHOTO = range(7)
_BY_PEOPLE = (_PLAN, _PERSON_PLAN, _IMAGE, _IDENTITY)


def _stable_id(name: str) -> int:
    return zlib.crc32(name.encode())


def _rng(spec: SyntheticSpec, kind: int, *index: int) -> np.random.Generator:
    if spec.domain in DOMAIN_STYLES:
        domain_index = sorted(DOMAIN_STYLES).index(spec.domain)
        return np.random.default_rng([spec.seed, domain_index, kind, *index])
    dom = SHIFT_DOMAINS[spec.domain]
    if kind in _BY_PEOPLE:
        keys = [_stable_id(dom.population)]
    elif kind == _RIG:
        keys = []
    elif kind == _CAMERA:
        keys = [_stable_id(dom.style)]
    else:  # _IMAGE_PHOTO
        keys = [_stable_id(dom.style), _stable_id(dom.population)]
    return np.random.default_rng([spec.seed, SHIFT_STREAMS, kind, *keys, *index])


def _save_jpeg(array: np.ndarray, path: Path, quality: int) -> None:
    Image.fromarray(array).save(path, format="JPEG", quality=quality)


def _plan(spec: SyntheticSpec) -> list[tuple[int, str, int, int]]:
    """Every image to draw: (pid, split, camera, frame index); deterministic from the spec."""
    rng = _rng(spec, _PLAN)
    num_train = spec.num_train_ids
    plan = []
    for pid in range(1, spec.num_ids + 1):
        r = _rng(spec, _PERSON_PLAN, pid)
        k = int(r.integers(spec.cameras_per_id[0], spec.cameras_per_id[1] + 1))
        cams = sorted(r.choice(spec.num_cameras, size=k, replace=False).tolist())
        per_cam = [int(r.integers(spec.images_per_camera[0], spec.images_per_camera[1] + 1)) for _ in cams]
        images = [(cam, n) for cam, count in zip(cams, per_cam) for n in range(count)]
        if pid <= num_train:
            plan += [(pid, "train", cam, n) for cam, n in images]
        else:
            query_of = {}
            for cam in cams:
                in_cam = [i for i, (c, _) in enumerate(images) if c == cam]
                query_of[cam] = in_cam[int(r.integers(len(in_cam)))]
            _ensure_cross_camera_matches(query_of, images)
            for i, (cam, n) in enumerate(images):
                plan.append((pid, "query" if query_of.get(cam) == i else "gallery", cam, n))
    # Distractors: extra people (ids after num_ids, written as id 0); junk: background only.
    for d in range(spec.num_distractors):
        plan.append((-(d + 1), "gallery", int(rng.integers(spec.num_cameras)), 0))
    for j in range(spec.num_junk):
        plan.append((-(spec.num_distractors + j + 1), "junk", int(rng.integers(spec.num_cameras)), 0))
    return plan


def _ensure_cross_camera_matches(query_of: dict[int, int], images: list[tuple[int, int]]) -> None:
    """Turn queries back into gallery images until every query has a gallery match in another camera."""
    while True:
        chosen = set(query_of.values())
        gallery_cams = {cam for i, (cam, _) in enumerate(images) if i not in chosen}
        stuck = [cam for cam in query_of if not gallery_cams - {cam}]
        if not stuck:
            return
        other = [cam for cam in query_of if cam != stuck[0]]
        query_of.pop(other[-1] if other else stuck[0])


FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


@dataclass
class _Scene:
    """What a domain's images are drawn with."""

    population: Population
    cameras: list[Camera]
    colour_jitter: float
    supersample: int  # render at this multiple of the stored size, then average down
    own_photo_stream: bool  # photometric noise from its own stream (not the pose stream)


def _scene(spec: SyntheticSpec) -> _Scene:
    if spec.domain in DOMAIN_STYLES:
        style: DomainStyle = DOMAIN_STYLES[spec.domain]
        cameras = [make_camera(i, style, _rng(spec, _CAMERA, i)) for i in range(spec.num_cameras)]
        return _Scene(style.population, cameras, style.colour_jitter, 1, False)
    dom = SHIFT_DOMAINS[spec.domain]
    camera_style = CAMERA_STYLES[dom.style]
    cameras = [make_styled_camera(make_rig(i, _rng(spec, _RIG, i)), camera_style, _rng(spec, _CAMERA, i))
               for i in range(spec.num_cameras)]
    return _Scene(POPULATIONS[dom.population], cameras, camera_style.colour_jitter, 2, True)


def _downsample(img: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return img
    h, w = img.shape[0] // factor, img.shape[1] // factor
    return img.reshape(h, factor, w, factor, 3).mean(axis=(1, 3), dtype=np.float32)


def _render_range(spec: SyntheticSpec, out: Path, start: int, stop: int, progress: bool = False) -> dict[str, int]:
    """Draw and write plan entries ``start:stop``; every image depends only on its plan index."""
    scene = _scene(spec)
    identities: dict[int, Identity] = {}
    counts = {"train": 0, "query": 0, "gallery": 0, "distractor": 0, "junk": 0}
    plan = _plan(spec)
    k = scene.supersample
    size = (spec.height * k, spec.width * k)
    for number in progress_bar(range(start, stop), desc=f"synthetic_{spec.domain}", unit="image", enabled=progress):
        pid, split, cam, n = plan[number]
        rng = _rng(spec, _IMAGE, number)
        photo_rng = _rng(spec, _IMAGE_PHOTO, number) if scene.own_photo_stream else rng
        camera = scene.cameras[cam]
        if split == "junk":
            img = render_person(make_identity(0, scene.population, rng), camera, scene.colour_jitter, rng, size)
            # Keep only scene: a crop that missed the person.
            img = np.roll(img, (spec.width // 2 + 8) * k, axis=1)
            name, folder = f"-1_c{cam + 1}s1_{number:06d}_00.jpg", FOLDERS["gallery"]
            counts["junk"] += 1
        else:
            if pid not in identities:
                seed_index = abs(pid) + (10_000 if pid < 0 else 0)
                identities[pid] = make_identity(pid, scene.population, _rng(spec, _IDENTITY, seed_index))
            img = render_person(identities[pid], camera, scene.colour_jitter, rng, size)
            name, folder = f"{max(pid, 0):04d}_c{cam + 1}s1_{number:06d}_{n:02d}.jpg", FOLDERS[split]
            counts["distractor" if pid < 0 else split] += 1
        img = _downsample(img, k)
        _save_jpeg(apply_camera(img, camera, photo_rng), out / folder / name, camera.jpeg_quality)
    return counts


def _render_all(spec: SyntheticSpec, out: Path, progress: bool, workers: int) -> dict[str, int]:
    for folder in FOLDERS.values():
        (out / folder).mkdir(parents=True, exist_ok=True)
    total = len(_plan(spec))
    if workers <= 1 or total < 200:
        return _render_range(spec, out, 0, total, progress)
    bounds = np.linspace(0, total, workers + 1).astype(int)
    counts: dict[str, int] = {}
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_render_range, spec, out, int(a), int(b), progress and i == 0)
                   for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
        for f in futures:
            for k, v in f.result().items():
                counts[k] = counts.get(k, 0) + v
    return counts


def _recipe(spec: SyntheticSpec) -> dict[str, object]:
    """The recipe written into ``synthetic.json``."""
    if spec.domain in DOMAIN_STYLES:
        return {"style": asdict(DOMAIN_STYLES[spec.domain])}
    dom = SHIFT_DOMAINS[spec.domain]
    return {"population": asdict(POPULATIONS[dom.population]), "camera_style": asdict(CAMERA_STYLES[dom.style])}


def domain_identity(spec: SyntheticSpec) -> dict[str, object]:
    """What decides every image of the domain ``spec`` draws: the generator version, the spec and
    the recipes (population and camera style). ``synthetic.json`` records it, a cache is current
    only while it is unchanged, and a result made on the domain can be keyed by it."""
    return {"version": spec.version, "spec": spec.as_dict(), **_recipe(spec)}


def generate_domain(
    spec: SyntheticSpec, cache_dir: str | Path | None = None, *, progress: bool = True, workers: int | None = None
) -> Path:
    """Make sure the domain described by ``spec`` exists on disk; generate it if not.

    ``workers`` processes draw the images (default: up to 4, one per CPU); the files do not
    depend on it.

    Returns:
        the data root to give the Market-1501 reader (it holds ``market1501/...``).
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    root = cache / spec.key()
    wanted = domain_identity(spec)
    if _is_current(root, wanted):
        return root
    # One generator per domain at a time: a second process (another training run, a calibration
    # running beside it) waits here and then finds the domain made, instead of deleting the
    # folder under the first one's feet.
    with locked(root):
        if _is_current(root, wanted, log_stale=True):
            return root
        return _generate(spec, cache, root, wanted, progress, workers)


def _is_current(root: Path, wanted: dict, log_stale: bool = False) -> bool:
    """Whether ``root`` holds a finished domain made from exactly ``wanted``."""
    meta_path = root / "synthetic.json"
    if not meta_path.is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, OSError):
        meta = {}
    if {k: meta.get(k) for k in wanted} == json.loads(json.dumps(wanted)):
        return True
    if log_stale:
        logger.info("synthetic cache %s is stale; regenerating", root)
    return False


def _generate(spec: SyntheticSpec, cache: Path, root: Path, wanted: dict, progress: bool,
              workers: int | None) -> Path:
    """Draw the domain into a temporary folder beside ``root``, then put it in place (the caller
    holds the domain's lock)."""
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.key()}.", dir=cache))
    try:
        data_dir = tmp / "market1501" / "Market-1501-v15.09.15"
        if workers is None:
            workers = min(4, os.cpu_count() or 1)
        counts = _render_all(spec, data_dir, progress, workers)
        seconds = time.perf_counter() - start
        meta = dict(wanted, counts=counts, seconds=round(seconds, 2))
        (tmp / "synthetic.json").write_text(json.dumps(meta, indent=1))
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("generated synthetic_%s (%s images) in %.1f s at %s", spec.domain, sum(counts.values()), seconds, root)
    return root
