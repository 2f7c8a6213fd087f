"""Drawing for the synthetic benchmark: identities, cameras and one rendered crop.

Two kinds of recipe feed the drawing. A :class:`Population` says who is in the scene (clothing
palette, patterns, accessories, body proportions); a camera style says how the cameras see them
(illumination, colour cast, contrast, saturation, tone curve, blur, noise, resolution, JPEG
quality, scene colours). The version-3 domains ``synthetic_a`` .. ``synthetic_d`` keep both in one
:class:`DomainStyle`; the domain-shift sets (:mod:`omnireid.data.synthetic_domains`) keep them
apart (:class:`Population` and :class:`CameraStyle`) so that either can change alone.

Everything here is plain NumPy on float32 ``(H, W, 3)`` images in [0, 1]; randomness comes only
from the ``numpy.random.Generator`` passed in, so the same generator state gives the same picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

PATTERNS = ("solid", "hstripes", "vstripes", "checks", "twotone", "logo", "diagonal")
BOTTOMS = ("trousers", "shorts", "skirt")
VIEWS = ("front", "back", "left", "right")

SKIN_TONES = np.array(
    [[0.96, 0.80, 0.69], [0.87, 0.67, 0.52], [0.72, 0.52, 0.38], [0.55, 0.38, 0.26], [0.38, 0.26, 0.18]],
    dtype=np.float32,
)
HAIR_COLOURS = np.array(
    [[0.08, 0.06, 0.05], [0.25, 0.16, 0.09], [0.55, 0.40, 0.22], [0.80, 0.68, 0.45], [0.55, 0.55, 0.55]],
    dtype=np.float32,
)


@dataclass(frozen=True)
class Population:
    """Who is in the scene: the clothes people wear and their build.

    Ranges are (low, high) for a uniform draw per identity; ``*_p`` are probabilities per identity.
    The defaults of the optional fields are the version-3 values.
    """

    name: str
    description: str
    palette: tuple[tuple[float, float, float], ...]  # clothing colours (RGB in [0, 1])
    pattern_weights: tuple[float, ...]  # over PATTERNS
    bottom_weights: tuple[float, ...]  # over BOTTOMS
    backpack_p: float
    bag_p: float
    hat_p: float
    coat_p: float = 0.2  # a top that reaches below the hips
    long_sleeves_p: float = 0.6
    long_hair_p: float = 0.35
    height: tuple[float, float] = (0.86, 1.0)  # fraction of the crop height at scale 1
    width: tuple[float, float] = (0.21, 0.30)  # shoulder width as a fraction of body height
    leg_ratio: tuple[float, float] = (0.47, 0.55)  # where the legs start (fraction of body height)
    pattern_period: tuple[float, float] = (0.03, 0.08)  # stripe/check period (fraction of body height)
    shade_jitter: float = 0.04  # std of each person's deviation from the palette colour of a garment


@dataclass(frozen=True)
class DomainStyle:
    """Global look of a domain: the kind of clothes people wear and what the cameras do.

    Ranges are (low, high) for a uniform draw per camera (or per image where noted).
    """

    name: str
    description: str
    palette: tuple[tuple[float, float, float], ...]  # clothing colours (RGB in [0, 1])
    background: tuple[tuple[float, float, float], ...]  # scene colours
    pattern_weights: tuple[float, ...]  # over PATTERNS
    bottom_weights: tuple[float, ...]  # over BOTTOMS
    backpack_p: float
    bag_p: float
    hat_p: float
    gain: tuple[float, float]  # brightness gain per camera
    cast: float  # max per-channel colour-cast deviation per camera
    contrast: tuple[float, float]
    saturation: tuple[float, float]  # per camera (1 = unchanged)
    blur: tuple[float, float]  # Gaussian sigma in pixels at full resolution, per camera
    noise: tuple[float, float]  # std of pixel noise, per camera
    resolution: tuple[float, float]  # render scale before upsampling (1 = sharp), per camera
    jpeg_quality: tuple[int, int]
    colour_jitter: float  # per-image, per-identity colour wobble

    @property
    def population(self) -> Population:
        """The clothing part of this style (version-3 body proportions)."""
        return Population(
            name=self.name, description=self.description, palette=self.palette,
            pattern_weights=self.pattern_weights, bottom_weights=self.bottom_weights,
            backpack_p=self.backpack_p, bag_p=self.bag_p, hat_p=self.hat_p,
        )


@dataclass(frozen=True)
class CameraStyle:
    """How the cameras of a domain see: everything photometric, nothing about the people.

    Ranges are (low, high) for a uniform draw per camera, so the cameras of one style differ from
    each other inside the style's ranges.
    """

    name: str
    description: str
    background: tuple[tuple[float, float, float], ...]  # scene colours (wall, floor, clutter)
    gain: tuple[float, float]  # illumination: brightness gain
    tint: tuple[float, float, float]  # colour cast shared by all cameras (RGB multipliers)
    cast: float  # max per-channel random colour-cast deviation of each camera around the tint
    contrast: tuple[float, float]
    saturation: tuple[float, float]  # 1 = unchanged
    gamma: tuple[float, float]  # tone curve out = in ** gamma (> 1 darkens the mid-tones)
    blur: tuple[float, float]  # Gaussian sigma in pixels, per camera
    noise: tuple[float, float]  # std of pixel noise
    resolution: tuple[float, float]  # render scale before upsampling (1 = sharp)
    jpeg_quality: tuple[int, int]
    colour_jitter: float = 0.05  # per-image colour wobble (light varying along the walk)


@dataclass
class Identity:
    """The appearance of one person."""

    pid: int
    height: float  # fraction of the crop height at scale 1
    width: float  # shoulder width as a fraction of body height
    leg_ratio: float  # where the legs start (fraction of body height)
    top_length: float  # where the top ends (>= leg_ratio means a coat)
    skin: np.ndarray
    hair: np.ndarray
    top: np.ndarray
    top2: np.ndarray  # pattern colour
    pattern: str
    pattern_period: float
    long_sleeves: bool
    bottom: np.ndarray
    bottom_kind: str
    shoes: np.ndarray
    backpack: np.ndarray | None
    bag: np.ndarray | None
    bag_side: int  # -1 left, +1 right
    hat: np.ndarray | None
    long_hair: bool


@dataclass
class Camera:
    """What one camera does to every image it takes."""

    index: int
    view_probs: np.ndarray  # over VIEWS
    scale: tuple[float, float]  # person height relative to crop
    gain: float
    cast: np.ndarray  # (3,) multiplicative
    contrast: float
    saturation: float
    blur: float
    noise: float
    resolution: float
    jpeg_quality: int
    bg: np.ndarray  # (3,) base colour
    bg2: np.ndarray  # (3,) floor colour
    clutter: np.ndarray  # (k, 3) colours of background clutter
    floor: float  # where the floor starts (fraction of crop height)
    gamma: float = 1.0  # tone curve (version 3: none)


@dataclass(frozen=True)
class CameraRig:
    """Where a camera hangs: its habitual viewpoint, the person's scale and the floor line.

    Shared by every domain-shift set, so that the sets differ only in population and style.
    """

    index: int
    view_probs: np.ndarray  # over VIEWS
    scale: tuple[float, float]  # person height relative to crop
    floor: float  # where the floor starts (fraction of crop height)


def _pick(rng: np.random.Generator, palette: np.ndarray, jitter: float) -> np.ndarray:
    colour = palette[rng.integers(len(palette))] + rng.normal(0, jitter, 3)
    return np.clip(colour, 0.0, 1.0).astype(np.float32)


def make_identity(pid: int, population: Population, rng: np.random.Generator) -> Identity:
    """Draw one person's appearance from a population (the draw order is fixed since version 3)."""
    pop = population
    palette = np.asarray(pop.palette, dtype=np.float32)
    pattern = PATTERNS[rng.choice(len(PATTERNS), p=np.asarray(pop.pattern_weights) / sum(pop.pattern_weights))]
    bottom_kind = BOTTOMS[rng.choice(len(BOTTOMS), p=np.asarray(pop.bottom_weights) / sum(pop.bottom_weights))]
    leg_ratio = float(rng.uniform(*pop.leg_ratio))
    coat = rng.random() < pop.coat_p
    return Identity(
        pid=pid,
        height=float(rng.uniform(*pop.height)),
        width=float(rng.uniform(*pop.width)),
        leg_ratio=leg_ratio,
        top_length=leg_ratio + (float(rng.uniform(0.08, 0.2)) if coat else float(rng.uniform(-0.03, 0.02))),
        skin=SKIN_TONES[rng.integers(len(SKIN_TONES))] * np.float32(rng.uniform(0.95, 1.05)),
        hair=HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))].copy(),
        top=_pick(rng, palette, pop.shade_jitter),
        top2=_pick(rng, palette, pop.shade_jitter),
        pattern=pattern,
        pattern_period=float(rng.uniform(*pop.pattern_period)),
        long_sleeves=bool(rng.random() < pop.long_sleeves_p),
        bottom=_pick(rng, palette, pop.shade_jitter),
        bottom_kind=bottom_kind,
        shoes=_pick(rng, palette, 0.05) * np.float32(0.6),
        backpack=_pick(rng, palette, 0.05) if rng.random() < pop.backpack_p else None,
        bag=_pick(rng, palette, 0.05) if rng.random() < pop.bag_p else None,
        bag_side=int(rng.choice([-1, 1])),
        hat=_pick(rng, palette, 0.05) if rng.random() < pop.hat_p else None,
        long_hair=bool(rng.random() < pop.long_hair_p),
    )


def make_camera(index: int, style: DomainStyle, rng: np.random.Generator) -> Camera:
    """Draw one camera of a version-3 domain: viewpoint habit, optics, colour response and scene."""
    favourite = rng.integers(len(VIEWS))
    view_probs = np.full(len(VIEWS), 0.1)
    view_probs[favourite] += 0.6
    view_probs /= view_probs.sum()
    background = np.asarray(style.background, dtype=np.float32)

    def u(r: tuple[float, float]) -> float:
        return float(rng.uniform(*r))

    lo = float(rng.uniform(0.72, 0.88))
    return Camera(
        index=index,
        view_probs=view_probs,
        scale=(lo, min(lo + 0.12, 0.98)),
        gain=u(style.gain),
        cast=(1.0 + rng.uniform(-style.cast, style.cast, 3)).astype(np.float32),
        contrast=u(style.contrast),
        saturation=u(style.saturation),
        blur=u(style.blur),
        noise=u(style.noise),
        resolution=u(style.resolution),
        jpeg_quality=int(rng.integers(style.jpeg_quality[0], style.jpeg_quality[1] + 1)),
        bg=_pick(rng, background, 0.05),
        bg2=_pick(rng, background, 0.05),
        clutter=np.stack([_pick(rng, background, 0.08) for _ in range(4)]),
        floor=float(rng.uniform(0.6, 0.85)),
    )


def make_rig(index: int, rng: np.random.Generator) -> CameraRig:
    """Draw where one camera of a domain-shift set hangs (viewpoint habit, scale, floor line)."""
    view_probs = np.full(len(VIEWS), 0.1)
    view_probs[rng.integers(len(VIEWS))] += 0.6
    lo = float(rng.uniform(0.72, 0.88))
    return CameraRig(index=index, view_probs=view_probs / view_probs.sum(), scale=(lo, min(lo + 0.12, 0.98)),
                     floor=float(rng.uniform(0.6, 0.85)))


def make_styled_camera(rig: CameraRig, style: CameraStyle, rng: np.random.Generator) -> Camera:
    """One camera of a domain-shift set: the rig's geometry seen through a draw of ``style``."""
    background = np.asarray(style.background, dtype=np.float32)

    def u(r: tuple[float, float]) -> float:
        return float(rng.uniform(*r))

    tint = np.asarray(style.tint, dtype=np.float32)
    return Camera(
        index=rig.index,
        view_probs=rig.view_probs,
        scale=rig.scale,
        gain=u(style.gain),
        cast=(tint * (1.0 + rng.uniform(-style.cast, style.cast, 3))).astype(np.float32),
        contrast=u(style.contrast),
        saturation=u(style.saturation),
        blur=u(style.blur),
        noise=u(style.noise),
        resolution=u(style.resolution),
        jpeg_quality=int(rng.integers(style.jpeg_quality[0], style.jpeg_quality[1] + 1)),
        bg=_pick(rng, background, 0.05),
        bg2=_pick(rng, background, 0.05),
        clutter=np.stack([_pick(rng, background, 0.08) for _ in range(4)]),
        floor=rig.floor,
        gamma=u(style.gamma),
    )


def _box(yy, xx, y0, y1, x0, x1):
    return (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)


def _ellipse(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def render_person(
    person: Identity, camera: Camera, colour_jitter: float, rng: np.random.Generator, size: tuple[int, int]
) -> np.ndarray:
    """Render one crop of ``person`` as seen by ``camera``.

    ``colour_jitter`` is the std of a per-image multiplicative wobble of the clothes' colours. The
    number of draws from ``rng`` does not depend on the camera's photometry or on
    ``colour_jitter``, so the same generator state gives the same pose and placement in any style.

    Returns:
        (H, W, 3) float32 in [0, 1] at ``size = (H, W)`` before the camera's optics; the caller
        applies :func:`apply_camera`.
    """
    H, W = size
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    img = np.empty((H, W, 3), dtype=np.float32)
    # Scene: wall, floor and some clutter, shifted per image.
    floor = int(H * (camera.floor + rng.uniform(-0.05, 0.05)))
    img[:floor] = camera.bg
    img[floor:] = camera.bg2
    img *= (0.9 + 0.2 * yy / H)[..., None]
    for _ in range(int(rng.integers(1, 5))):
        h, w = rng.uniform(0.1, 0.5) * H, rng.uniform(0.1, 0.6) * W
        y, x = rng.uniform(-0.1, 0.9) * H, rng.uniform(-0.2, 1.0) * W
        img[_box(yy, xx, y, y + h, x, x + w)] = camera.clutter[rng.integers(len(camera.clutter))]

    view = VIEWS[rng.choice(len(VIEWS), p=camera.view_probs)]
    side = view in ("left", "right")
    mirror = -1.0 if view == "left" else 1.0
    jit = colour_jitter

    def c(colour: np.ndarray) -> np.ndarray:
        return np.clip(colour * (1 + rng.normal(0, jit, 3)).astype(np.float32), 0, 1)

    top, top2, bottom, skin = c(person.top), c(person.top2), c(person.bottom), c(person.skin)

    ph = H * person.height * rng.uniform(*camera.scale)
    y0 = (H - ph) * rng.uniform(0.2, 0.8)
    cx = W / 2 + rng.normal(0, 0.05) * W
    bw = ph * person.width * (0.62 if side else 1.0)  # body width
    phase = rng.uniform(-1, 1)  # walking phase

    def Y(v: float) -> float:
        return y0 + v * ph

    # Legs (with skin below shorts / skirt), then shoes.
    leg_w = bw * 0.36
    stride = phase * bw * (0.35 if side else 0.12)
    for k in (-1, 1):
        lx = cx + k * bw * (0.05 if side else 0.22) + k * stride
        mask = _box(yy, xx, Y(person.leg_ratio), Y(0.95), lx - leg_w / 2, lx + leg_w / 2)
        img[mask] = bottom if person.bottom_kind == "trousers" else skin
        if person.bottom_kind != "trousers":
            knee = 0.70 if person.bottom_kind == "shorts" else 0.74
            img[mask & (yy < Y(knee))] = bottom
        img[_box(yy, xx, Y(0.95), Y(1.0), lx - leg_w / 2 - 1, lx + leg_w / 2 + 1)] = person.shoes
    if person.bottom_kind == "skirt":
        t = np.clip((yy - Y(person.leg_ratio)) / (0.2 * ph), 0, 1)
        half = bw * (0.45 + 0.2 * t)
        img[(yy >= Y(person.leg_ratio)) & (yy < Y(person.leg_ratio + 0.2)) & (np.abs(xx - cx) < half)] = bottom

    # Torso (tapered) with its pattern.
    t_top, t_bot = Y(0.15), Y(person.top_length)
    rel = np.clip((yy - t_top) / max(t_bot - t_top, 1.0), 0, 1)
    half = bw * (0.5 - 0.06 * rel)
    torso = (yy >= t_top) & (yy < t_bot) & (np.abs(xx - cx) < half)
    img[torso] = top
    period = max(person.pattern_period * ph, 2.0)
    pat = None
    if person.pattern == "hstripes":
        pat = ((yy - t_top) // (period / 2)) % 2 == 1
    elif person.pattern == "vstripes":
        pat = ((xx - cx + 100) // (period / 2)) % 2 == 1
    elif person.pattern == "checks":
        pat = (((yy - t_top) // period + (xx - cx + 100) // period) % 2) == 1
    elif person.pattern == "twotone":
        pat = (yy - t_top) > 0.45 * (t_bot - t_top)
    elif person.pattern == "diagonal":
        pat = ((yy + xx * mirror) // (period / 1.5)) % 2 == 1
    elif person.pattern == "logo" and view == "front":
        pat = _box(yy, xx, Y(0.22), Y(0.32), cx - bw * 0.18, cx + bw * 0.18)
    if pat is not None:
        img[torso & pat] = top2

    # Arms: swing with the walk; sleeves in the top colour or bare.
    arm_w = bw * 0.2
    for k in ((-1, 1) if not side else (1,)):
        ax = cx + (k * (half.max() + arm_w * 0.4) if not side else -phase * bw * 0.25)
        arm = _box(yy, xx, Y(0.16), Y(0.47), ax - arm_w / 2, ax + arm_w / 2)
        img[arm] = top if person.long_sleeves else skin
        img[arm & (yy >= Y(0.43))] = skin

    # Accessories.
    if person.backpack is not None:
        if view == "back":
            img[_box(yy, xx, Y(0.18), Y(0.44), cx - bw * 0.34, cx + bw * 0.34)] = person.backpack
        elif side:
            bx = cx - mirror * bw * 0.55
            img[_box(yy, xx, Y(0.18), Y(0.42), bx - bw * 0.25, bx + bw * 0.25)] = person.backpack
        else:
            for k in (-1, 1):
                img[_box(yy, xx, Y(0.15), Y(0.33), cx + k * bw * 0.28 - 1, cx + k * bw * 0.28 + 1)] = person.backpack
    if person.bag is not None and view != ("left" if person.bag_side > 0 else "right"):
        s = person.bag_side * (1 if view != "back" else -1)
        bx = cx + s * (bw * 0.55) if not side else cx + bw * 0.1
        img[_box(yy, xx, Y(0.42), Y(0.58), bx - bw * 0.18, bx + bw * 0.18)] = person.bag

    # Head: face or hair, optional hat.
    hy, hr = Y(0.08), 0.07 * ph
    head = _ellipse(yy, xx, hy, cx, hr, hr * 0.8)
    img[head] = person.hair if view == "back" else skin
    if view != "back":
        img[head & (yy < hy - hr * 0.35)] = person.hair
        if side:
            img[head & ((xx - cx) * mirror < -hr * 0.2)] = person.hair
    if person.long_hair:
        img[_box(yy, xx, hy, Y(0.2), cx - hr * 0.8, cx + hr * 0.8) & ~torso & (view == "back" or side)] = person.hair
    if person.hat is not None:
        img[head & (yy < hy - hr * 0.2)] = person.hat

    # Occasional occluder in front of the lower body.
    if rng.random() < 0.12:
        oy = rng.uniform(0.55, 0.85) * H
        ox = rng.uniform(-0.3, 0.7) * W
        img[_box(yy, xx, oy, H, ox, ox + rng.uniform(0.2, 0.5) * W)] = camera.clutter[rng.integers(len(camera.clutter))]
    return img


def apply_camera(img: np.ndarray, camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """The camera's optics and colour response: saturation, contrast, gain and cast, tone curve,
    resolution loss, blur, noise.

    Args:
        img: (H, W, 3) float32 in [0, 1].

    Returns:
        (H, W, 3) uint8.
    """
    H, W = img.shape[:2]
    gain = camera.gain * rng.uniform(0.9, 1.1)
    grey = img.mean(axis=2, keepdims=True)
    out = grey + (img - grey) * camera.saturation
    out = (out - 0.5) * camera.contrast + 0.5
    out = out * gain * camera.cast
    out = np.clip(out, 0, 1)
    if camera.gamma != 1.0:
        out = out ** np.float32(camera.gamma)
    pil = Image.fromarray((out * 255 + 0.5).astype(np.uint8))
    if camera.resolution < 0.98:
        small = (max(8, int(W * camera.resolution)), max(16, int(H * camera.resolution)))
        pil = pil.resize(small, Image.BILINEAR).resize((W, H), Image.BILINEAR)
    if camera.blur > 0.2:
        pil = pil.filter(ImageFilter.GaussianBlur(camera.blur))
    arr = np.asarray(pil, dtype=np.float32)
    if camera.noise > 0:
        arr = arr + rng.normal(0, camera.noise * 255, arr.shape).astype(np.float32)
    return np.clip(arr + 0.5, 0, 255).astype(np.uint8)
