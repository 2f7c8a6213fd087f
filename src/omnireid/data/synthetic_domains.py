"""The controlled domain-shift benchmark: synthetic domains built from separate recipes.

A domain here is a pair (population, camera style):

- the **population** (:class:`~omnireid.data.synthetic_render.Population`) says who walks past:
  clothing palette, top patterns, trousers/shorts/skirts, coats, sleeves, accessories (backpack,
  bag, hat), hair and body proportions;
- the **camera style** (:class:`~omnireid.data.synthetic_render.CameraStyle`) says how the
  cameras see them: illumination (gain), colour cast (a tint shared by the style's cameras plus a
  per-camera deviation), contrast, saturation, tone curve (gamma), blur, noise, resolution loss,
  JPEG quality and the scene's colours.

Domain ``pXsY`` is population ``pX`` seen in style ``sY``. Everything about the people -- which
identities exist, their clothes, which cameras see them, how many pictures, every pose and
position -- is drawn from the population's own random streams; everything photometric from the
style's. So ``p1s2`` holds exactly the people, poses and camera placements of ``p1s1`` (same
training and test identities, same file names) photographed in another style: a pure style
shift. ``p2s1`` holds other people, drawn from another population, under ``p1s1``'s very cameras:
a pure population shift. The camera rig (viewpoint habit, scale, floor line of each camera) is the
same in every domain.

The registered sets (see :data:`SHIFT_DOMAINS`, :data:`SINGLE_SOURCE`, :data:`LEAVE_ONE_OUT`):

============  ==========  =======  =============================================================
domain        population  style    role
============  ==========  =======  =============================================================
``p1s1``      p1          s1       source (single-source); member of the leave-one-out group
``p1s2``      p1          s2       target of ``p1s1``: style shift only
``p1s3``      p1          s3       target of ``p1s1``: style shift only
``p1s4``      p1          s4       target of ``p1s1``: style shift only
``p2s1``      p2          s1       target of ``p1s1``: population shift only
``p2s2``      p2          s2       target of ``p1s1``: both; member of the leave-one-out group
``p3s3``      p3          s3       target of ``p1s1``: both; member of the leave-one-out group
``p4s4``      p4          s4       target of ``p1s1``: both; member of the leave-one-out group
============  ==========  =======  =============================================================

Leave-one-domain-out: train on three of ``p1s1, p2s2, p3s3, p4s4`` (different people and
different styles each), test on the fourth.

These recipes are generator version :data:`SHIFT_VERSION`; a change to any number here is a new
version (the cache regenerates, and the calibration in docs/data.md must be measured again).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from omnireid.data.synthetic_render import CameraStyle, Population

SHIFT_VERSION = 5
"""Generator version of the domain-shift sets (``synthetic_a`` .. ``synthetic_d`` stay version 3).

Version 5 changed the recipes of p2 (palette narrowed), s2 (strength 0.5 -> 0.3) and s3 (0.5 ->
0.55), and so the domains ``p1s2``, ``p1s3``, ``p2s1``, ``p2s2`` and ``p3s3``. The other domains
(``p1s1``, ``p1s4``, ``p4s4``) draw the same images as in version 4 (:data:`SHIFT_STREAMS`)."""

SHIFT_STREAMS = 4
"""The version that keys the random streams of the domain-shift sets. It stays 4 while only
recipe numbers change, so a domain whose population and style recipes are unchanged keeps every
image of the earlier version, and only the changed domains are new."""

def _lerp(a, b, t: float, integer: bool = False):
    """``a + t (b - a)`` through nested tuples, rounded to integers or to 4 decimals."""
    if isinstance(a, tuple):
        if len(a) != len(b):
            raise ValueError(f"cannot blend tuples of lengths {len(a)} and {len(b)}")
        return tuple(_lerp(x, y, t, integer) for x, y in zip(a, b))
    value = a + t * (b - a)
    return int(round(value)) if integer else round(float(value), 4)


def _blend(base, full, strength: float, name: str, description: str):
    """The recipe ``strength`` of the way from ``base`` to ``full`` (0: base, 1: full), every
    number moved linearly (colours colour by colour)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    fields = {f.name: _lerp(getattr(base, f.name), getattr(full, f.name), strength, f.name == "jpeg_quality")
              for f in dataclasses.fields(base) if f.name not in ("name", "description")}
    return type(base)(name=name, description=description, **fields)


def blend_population(base: Population, full: Population, strength: float, name: str, description: str) -> Population:
    """A population ``strength`` of the way from ``base`` to ``full`` (palettes of equal length)."""
    return _blend(base, full, strength, name, description)


def blend_style(base: CameraStyle, full: CameraStyle, strength: float, name: str, description: str) -> CameraStyle:
    """A camera style ``strength`` of the way from ``base`` to ``full`` (equal numbers of scene colours)."""
    return _blend(base, full, strength, name, description)


def narrow_palette(population: Population, amount: float) -> Population:
    """``population`` with every palette colour moved ``amount`` of the way to the palette's mean
    colour (0: unchanged; 1: one colour for everybody). People then differ by finer shades of
    fewer hues, and a model that learned to tell people apart by coarse colour differences
    meets a finer discrimination than it was trained for."""
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount must be in [0, 1), got {amount}")
    n = len(population.palette)
    mean = tuple(sum(c[i] for c in population.palette) / n for i in range(3))
    palette = tuple(tuple(round(m + (1.0 - amount) * (v - m), 4) for v, m in zip(colour, mean))
                    for colour in population.palette)
    return dataclasses.replace(population, palette=palette)


# ---------------------------------------------------------------------------------------------
# Populations: who is in the scene. p1 is the source population; the others are written out in
# full ("*_FULL") and registered at a calibrated strength on the way from p1.

P1 = Population(
    name="p1", description="city casual: vivid everyday colours, mixed patterns, backpacks",
    palette=(
        (0.85, 0.10, 0.10), (0.10, 0.35, 0.80), (0.10, 0.60, 0.20), (0.95, 0.85, 0.15),
        (0.95, 0.95, 0.95), (0.10, 0.10, 0.12), (0.55, 0.55, 0.58), (0.55, 0.30, 0.15),
        (0.90, 0.45, 0.10), (0.50, 0.15, 0.55), (0.15, 0.20, 0.40), (0.85, 0.55, 0.65),
    ),
    pattern_weights=(3, 1.5, 1, 1, 1.5, 1, 1), bottom_weights=(6, 2, 2),
    backpack_p=0.35, bag_p=0.25, hat_p=0.15, coat_p=0.2, long_sleeves_p=0.6, long_hair_p=0.35,
    height=(0.86, 1.0), width=(0.21, 0.30), leg_ratio=(0.47, 0.55), pattern_period=(0.06, 0.12), shade_jitter=0.12,
)
P2_FULL = Population(
    name="p2", description="winter office: muted and earthy colours, coats, checks, hats, slim and tall",
    palette=(
        (0.12, 0.16, 0.32), (0.22, 0.22, 0.24), (0.70, 0.55, 0.35), (0.45, 0.10, 0.15),
        (0.35, 0.38, 0.18), (0.90, 0.86, 0.75), (0.10, 0.30, 0.20), (0.65, 0.30, 0.12),
        (0.35, 0.42, 0.55), (0.80, 0.65, 0.15), (0.35, 0.18, 0.35), (0.75, 0.75, 0.75),
    ),
    pattern_weights=(3, 1, 0.5, 2.5, 1, 0.3, 0.5), bottom_weights=(8, 0.3, 2),
    backpack_p=0.15, bag_p=0.45, hat_p=0.45, coat_p=0.55, long_sleeves_p=0.95, long_hair_p=0.3,
    height=(0.90, 1.0), width=(0.18, 0.26), leg_ratio=(0.45, 0.52), pattern_period=(0.06, 0.12), shade_jitter=0.12,
)
P3_FULL = Population(
    name="p3", description="summer sport: neon and pastel colours, stripes and logos, shorts, caps",
    palette=(
        (0.45, 0.95, 0.20), (0.98, 0.25, 0.60), (0.10, 0.85, 0.90), (1.00, 0.55, 0.10),
        (0.98, 0.95, 0.35), (0.75, 0.65, 0.95), (0.60, 0.95, 0.75), (0.98, 0.50, 0.45),
        (0.98, 0.98, 0.98), (0.50, 0.75, 0.98), (0.15, 0.25, 0.85), (0.90, 0.10, 0.15),
    ),
    pattern_weights=(2, 2, 1, 0.5, 1, 2, 1), bottom_weights=(2, 5, 2),
    backpack_p=0.5, bag_p=0.1, hat_p=0.35, coat_p=0.05, long_sleeves_p=0.15, long_hair_p=0.4,
    height=(0.84, 0.98), width=(0.24, 0.33), leg_ratio=(0.48, 0.56), pattern_period=(0.06, 0.12), shade_jitter=0.12,
)
P4_FULL = Population(
    name="p4", description="evening formal: black, white, greys and jewel tones, two-tone tops, bags",
    palette=(
        (0.05, 0.05, 0.06), (0.97, 0.97, 0.97), (0.40, 0.40, 0.42), (0.70, 0.70, 0.72),
        (0.55, 0.05, 0.10), (0.80, 0.65, 0.25), (0.05, 0.15, 0.45), (0.05, 0.40, 0.40),
        (0.30, 0.05, 0.35), (0.20, 0.20, 0.22), (0.85, 0.80, 0.70), (0.55, 0.10, 0.30),
    ),
    pattern_weights=(3, 0.5, 1, 0.5, 3, 0.5, 1), bottom_weights=(6, 0.5, 4),
    backpack_p=0.05, bag_p=0.6, hat_p=0.1, coat_p=0.4, long_sleeves_p=0.8, long_hair_p=0.45,
    height=(0.88, 1.0), width=(0.20, 0.28), leg_ratio=(0.46, 0.54), pattern_period=(0.06, 0.12), shade_jitter=0.12,
)

# ---------------------------------------------------------------------------------------------
# Camera styles: how the cameras see. s1 is the source style; the others are written out in full
# ("*_FULL": the look at its most extreme) and registered at a calibrated strength from s1.

S1 = CameraStyle(
    name="s1", description="street in daylight: neutral light, sharp, clean",
    background=((0.55, 0.55, 0.55), (0.62, 0.60, 0.55), (0.45, 0.47, 0.50), (0.70, 0.72, 0.74),
                (0.40, 0.45, 0.38)),
    gain=(0.9, 1.15), tint=(1.0, 1.0, 1.0), cast=0.08, contrast=(0.9, 1.1), saturation=(0.9, 1.1),
    gamma=(0.9, 1.1), blur=(0.0, 0.4), noise=(0.005, 0.015), resolution=(0.85, 1.0),
    jpeg_quality=(85, 95),
)
S2_FULL = CameraStyle(
    name="s2", description="dim indoor CCTV: dark, blue cast, dull colours, grainy, soft",
    background=((0.22, 0.24, 0.27), (0.32, 0.32, 0.30), (0.18, 0.21, 0.18), (0.38, 0.36, 0.41),
                (0.27, 0.27, 0.30)),
    gain=(0.55, 0.7), tint=(0.75, 0.92, 1.25), cast=0.12, contrast=(0.7, 0.9), saturation=(0.45, 0.7),
    gamma=(1.3, 1.6), blur=(0.4, 0.8), noise=(0.025, 0.04), resolution=(0.55, 0.7),
    jpeg_quality=(55, 70),
)
S3_FULL = CameraStyle(
    name="s3", description="warm shopping mall: orange light, strong contrast and colour",
    background=((0.80, 0.65, 0.45), (0.60, 0.30, 0.25), (0.85, 0.80, 0.70), (0.35, 0.50, 0.60),
                (0.70, 0.55, 0.70)),
    gain=(1.0, 1.25), tint=(1.3, 1.0, 0.65), cast=0.1, contrast=(1.2, 1.45), saturation=(1.4, 1.8),
    gamma=(0.8, 0.95), blur=(0.0, 0.3), noise=(0.005, 0.015), resolution=(0.85, 1.0),
    jpeg_quality=(85, 95),
)
S4_FULL = CameraStyle(
    name="s4", description="washed-out overcast: over-exposed, low contrast, pale colours, soft",
    background=((0.88, 0.90, 0.92), (0.75, 0.78, 0.82), (0.95, 0.95, 0.95), (0.60, 0.62, 0.66),
                (0.82, 0.84, 0.80)),
    gain=(1.2, 1.4), tint=(0.95, 1.0, 1.05), cast=0.06, contrast=(0.5, 0.7), saturation=(0.4, 0.6),
    gamma=(0.65, 0.8), blur=(0.3, 0.7), noise=(0.01, 0.02), resolution=(0.7, 0.85),
    jpeg_quality=(65, 80),
)

POPULATION_STRENGTH: dict[str, float] = {"p2": 1.0, "p3": 1.0, "p4": 1.0}
"""How far each registered population is from p1 on the way to its ``*_FULL`` recipe."""

PALETTE_NARROWING: dict[str, float] = {"p2": 0.55}
"""Version 5: how far each population's palette is pulled to its mean colour
(:func:`narrow_palette`) after the blend. Version 4 had none, and p2 under p1's cameras kept 88 %
of the source model's rank-1: its people differed from p1's by colours the source model already
told apart."""

STYLE_STRENGTH: dict[str, float] = {"s2": 0.3, "s3": 0.55, "s4": 0.5}
"""How far each registered camera style is from s1 on the way to its ``*_FULL`` recipe. Version 4
had s2 at 0.5 (the source model kept 5 % of its rank-1 there: near chance) and s3 at 0.5."""

POPULATIONS: dict[str, Population] = {
    "p1": P1,
    **{full.name: narrow_palette(blend_population(P1, full, POPULATION_STRENGTH[full.name], full.name,
                                                  full.description), PALETTE_NARROWING.get(full.name, 0.0))
       for full in (P2_FULL, P3_FULL, P4_FULL)},
}
CAMERA_STYLES: dict[str, CameraStyle] = {
    "s1": S1,
    **{full.name: blend_style(S1, full, STYLE_STRENGTH[full.name], full.name, full.description)
       for full in (S2_FULL, S3_FULL, S4_FULL)},
}
FULL_POPULATIONS: dict[str, Population] = {p.name: p for p in (P1, P2_FULL, P3_FULL, P4_FULL)}
FULL_STYLES: dict[str, CameraStyle] = {s.name: s for s in (S1, S2_FULL, S3_FULL, S4_FULL)}


@dataclass(frozen=True)
class ShiftDomain:
    """One registered domain of the benchmark: a population seen in a camera style."""

    name: str
    population: str  # key of POPULATIONS
    style: str  # key of CAMERA_STYLES

    @property
    def description(self) -> str:
        return (f"{POPULATIONS[self.population].description} (population {self.population}), "
                f"seen as {CAMERA_STYLES[self.style].description} (style {self.style})")


SHIFT_DOMAINS: dict[str, ShiftDomain] = {
    name: ShiftDomain(name, name[:2], name[2:])
    for name in ("p1s1", "p1s2", "p1s3", "p1s4", "p2s1", "p2s2", "p3s3", "p4s4")
}

SINGLE_SOURCE: dict[str, object] = {
    "source": "p1s1",
    "targets": {"style": ("p1s2", "p1s3", "p1s4"), "population": ("p2s1",), "both": ("p2s2", "p3s3", "p4s4")},
}
"""Single-source setting: train on ``source``, test on it and on each target, grouped by shift."""

LEAVE_ONE_OUT: tuple[str, ...] = ("p1s1", "p2s2", "p3s3", "p4s4")
"""Multi-source setting: train on all but one of these, test on the one left out."""


def shift_kind(source: str, target: str) -> str:
    """What differs between two registered domains: ``"none"``, ``"style"``, ``"population"`` or
    ``"both"`` (names with or without the ``synthetic_`` prefix)."""
    a, b = (SHIFT_DOMAINS[n.removeprefix("synthetic_")] for n in (source, target))
    style, population = a.style != b.style, a.population != b.population
    return {(False, False): "none", (True, False): "style", (False, True): "population"}.get(
        (style, population), "both")


def leave_one_out_splits() -> list[tuple[tuple[str, ...], str]]:
    """``[(sources, held_out), ...]`` for the leave-one-domain-out group, ``synthetic_`` names."""
    names = [f"synthetic_{n}" for n in LEAVE_ONE_OUT]
    return [(tuple(n for n in names if n != held), held) for held in names]
