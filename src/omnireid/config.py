"""Typed configuration: dataclasses, YAML files and dotted ``key=value`` overrides.

Two kinds of recipe share the sections and the one loader below:

* a training recipe, :class:`Config` (``model``, ``data``, ``loss``, ``optim``, ``sched``,
  ``train``, ``test``), read by :func:`load_config`;
* an architecture-search recipe, :class:`NasConfig` (``data``, ``loss``, ``optim``, ``sched``,
  ``train`` and ``nas``), read by :func:`load_nas_config`.

Anything not written keeps its default. Unknown keys are errors that name the file and suggest
the nearest valid key::

    cfg = load_config("demo", overrides=["optim.lr=0.01", "train.max_epoch=3"])  # packaged
    cfg = load_config("my_recipe.yaml")                                              # a file
    cfg.to_yaml()          # the resolved recipe, saved beside every run's outputs
    nas_cfg = load_nas_config("nas", ["train.seed=2"])

An error names where the offending setting came from: the command line (``--set train.amp=bf32:
...``), the recipe file (``r.yaml: ...``), a built-in recipe, or the default value.

Only :func:`omnireid.engine.fit`, :func:`omnireid.engine.nas.nas` and the CLI read a config
object; everything below them takes plain values.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from omnireid.data.loaders import SAMPLERS
from omnireid.data.spec import check_spec, check_unique_labels, parse_dataset_spec
from omnireid.engine.optim import OPTIMIZERS, SCHEDULES
from omnireid.engine.train import AMP_DTYPES
from omnireid.errors import ConfigError, OmnireidError
from omnireid.evaluation.distances import DISTANCE_METRICS
from omnireid.files import write_text
from omnireid.models.supernet import NAS_MODES
from omnireid.recipes import resolve_recipe
from omnireid.registry import did_you_mean


@dataclass
class ModelConfig:
    """Which network to train.

    ``arch`` is a JSON architecture spec, e.g. a child found by the instance-norm search; when it
    is set the network is the general ``osnet`` built from it and ``name`` is only a label. ``weights`` initialises the network from a checkpoint (the classifier
    is dropped when its size differs).
    """

    name: str = "osnet_x1_0"
    arch: str | None = None
    weights: str | None = None
    dropout: float = 0.0


@dataclass
class DataConfig:
    """Data sources, targets, image size, augmentation and batching.

    ``sources`` are combined into one training set (multi-source training); ``targets`` are
    evaluated separately. Each entry is a reader name (``market1501``) or a mapping with its own
    settings (see :mod:`omnireid.data.spec`)::

        sources: [{name: csv_manifest, root: a.csv, as: siteA}]
        targets: [{name: market1501, root: ~/data}, {name: csv_manifest, root: b.csv, as: siteB}]

    ``root`` is the data root of the entries that give none (the cache folder for
    ``synthetic_*``). ``synthetic`` passes options to the synthetic generator (e.g.
    ``num_ids: 100``). ``on_bad_image``: ``skip`` (default) leaves an unreadable image out,
    lists it in ``skipped_images.tsv`` in the run folder and counts it in the log and the
    results; ``error`` stops with an error naming the file.
    """

    root: str | None = None
    sources: list[str | dict[str, Any]] = field(default_factory=lambda: ["market1501"])
    targets: list[str | dict[str, Any]] = field(default_factory=lambda: ["market1501"])
    combineall: bool = False
    height: int = 256
    width: int = 128
    batch_size: int = 64
    sampler: str = "random"
    num_instances: int = 4
    num_workers: int = 2
    random_flip: bool = True
    random_crop: bool = False
    random_erase: bool = False
    color_jitter: bool = False
    synthetic: dict[str, Any] = field(default_factory=dict)
    on_bad_image: str = "skip"


@dataclass
class LossConfig:
    """Weighted sum of losses: ``softmax`` (cross-entropy with label smoothing ``label_smooth``)
    and ``triplet`` (batch-hard, ``margin``). A weight of 0 switches a loss off."""

    softmax: float = 1.0
    triplet: float = 0.0
    label_smooth: float = 0.1
    margin: float = 0.3


@dataclass
class OptimConfig:
    """Optimiser, learning rates and fixbase.

    ``name``: ``amsgrad``, ``adam``, ``sgd``, ``rmsprop``. ``new_layers`` get
    ``lr * new_layers_lr_mult`` (e.g. ``[classifier]`` with mult 10 when fine-tuning).
    For the first ``fixbase_epochs`` epochs only ``open_layers`` train.
    """

    name: str = "amsgrad"
    lr: float = 0.0015
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = False
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    rmsprop_alpha: float = 0.99
    new_layers: list[str] = field(default_factory=list)
    new_layers_lr_mult: float = 1.0
    fixbase_epochs: int = 0
    open_layers: list[str] = field(default_factory=lambda: ["classifier"])
    grad_clip: float = 0.0


@dataclass
class SchedConfig:
    """Learning-rate schedule, applied per epoch.

    ``name``: ``constant``, ``single_step`` (``stepsize[0]``), ``multi_step`` (all of
    ``stepsize``), ``cosine``. ``warmup_epochs`` ramps linearly from ``warmup_factor * lr``.
    """

    name: str = "single_step"
    stepsize: list[int] = field(default_factory=lambda: [60])
    gamma: float = 0.1
    warmup_epochs: int = 0
    warmup_factor: float = 0.1
    min_lr: float = 0.0


@dataclass
class TrainConfig:
    """The loop: epochs, precision, device, seeds, checkpoints and logging.

    ``amp``: ``none``, ``bf16`` (CPU or GPU) or ``fp16`` (GPU). ``deterministic`` asks torch for
    deterministic kernels. ``eval_freq``: evaluate every N epochs (0: only at the end,
    -1: never). ``max_steps_per_epoch`` caps an epoch (0: no cap) for quick runs. ``progress``:
    the per-epoch lines and, on a terminal, a progress bar. ``print_freq``: when the output is
    not a terminal, also a line every N batches with the running loss and the ETA (0: off).
    """

    max_epoch: int = 60
    seed: int = 1
    deterministic: bool = False
    device: str = "auto"
    amp: str = "none"
    channels_last: bool = True
    num_threads: int = 0
    eval_freq: int = 0
    max_steps_per_epoch: int = 0
    output_dir: str = "runs/default"
    tensorboard: bool = False
    progress: bool = True
    print_freq: int = 0
    save_curves: bool = True


@dataclass
class TestConfig:
    """Evaluation: distance (``euclidean`` or ``cosine``), feature normalisation, batch size."""

    dist_metric: str = "euclidean"
    normalize_feature: bool = False
    batch_size: int = 128


class _Recipe:
    """What every recipe can do: plain data, YAML, an atomic save."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> Path:
        """Write the resolved recipe as YAML, atomically."""
        return write_text(path, self.to_yaml())


@dataclass
class Config(_Recipe):
    """A whole recipe. ``expected`` records the numbers the recipe is known to give (free form)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)
    expected: dict[str, Any] = field(default_factory=dict)


ARCH_OPTIMIZERS = ("same", "adam", "sgd")
"""``nas.arch_optim``: the network's optimiser (``same``) or an optimiser of their own."""

ARCH_SCHEDULES = ("same", "constant")
"""``nas.arch_schedule``: the network's learning-rate schedule, or a constant ``arch_lr``."""


@dataclass
class NasOptions:
    """The ``nas`` section: the supernet, the temperature schedule, the architecture weights.

    ``mode``: ``mixture`` (all four candidates weighted, the paper), ``single_path`` or
    ``two_path`` (one or two sampled candidates per step; see :mod:`omnireid.models.supernet`).
    ``width``: supernet width multiplier; ``child_width``: width written into the derived spec
    (default: ``width``). ``affine_norms``: learnable scale/shift in the normalisation layers
    (the paper's search: no). ``share_weights``: the four candidates of a block share their
    convolutions (the paper: no).

    Temperature: ``lambda = max(min_temperature, init_temperature * decay_rate ** (epoch //
    decay_every))``; the defaults are the paper's (10, halved every 20 epochs, floor 1).

    Architecture weights (``alpha``): ``arch_optim: same`` keeps them in the network's optimiser
    and parameter group, as the published search code does; ``adam`` or ``sgd`` give them their
    own optimiser with ``arch_lr``, ``arch_weight_decay`` (and ``optim.momentum`` for sgd,
    ``optim.adam_beta1/2`` for adam). ``arch_schedule``: ``same`` applies the learning-rate
    schedule of ``sched`` to them too; ``constant`` keeps ``arch_lr`` throughout (only with an
    optimiser of their own). ``arch_start_epoch``: epochs of network-only training before ``alpha`` moves (0: from
    the start, as the paper).
    """

    mode: str = "mixture"
    init_temperature: float = 10.0
    min_temperature: float = 1.0
    decay_every: int = 20
    decay_rate: float = 0.5
    width: float = 1.0
    feature_dim: int = 512
    child_width: float | None = None
    affine_norms: bool = False
    share_weights: bool = False
    arch_optim: str = "same"
    arch_lr: float = 0.0
    arch_weight_decay: float = 0.0
    arch_schedule: str = "same"
    arch_start_epoch: int = 0


def _nas_data() -> DataConfig:
    return DataConfig(sources=["synthetic_a", "synthetic_b", "synthetic_c", "synthetic_d"], targets=[],
                      height=64, width=32, batch_size=32, sampler="random", num_workers=0,
                      color_jitter=True)


def _nas_options() -> NasOptions:
    return NasOptions(width=0.25, decay_every=4, arch_optim="adam", arch_lr=0.02,
                      arch_schedule="constant", arch_start_epoch=6)


@dataclass
class NasConfig(_Recipe):
    """Everything ``omnireid nas`` reads; the defaults are the CPU recipe on the built-in data
    (the packaged recipe ``nas`` writes them out with their reasons; ``nas_paper`` is the
    search recipe published with the paper's code).

    ``data``, ``loss``, ``optim``, ``sched`` and ``train`` are the training recipe's sections.
    Of ``train`` the search reads ``max_epoch``, ``seed``, ``deterministic``, ``device``,
    ``amp``, ``channels_last``, ``num_threads``, ``max_steps_per_epoch``, ``output_dir`` and
    ``progress``; of ``optim`` everything but fixbase and ``new_layers``. ``nas`` is
    :class:`NasOptions`.
    """

    data: DataConfig = field(default_factory=_nas_data)
    loss: LossConfig = field(default_factory=lambda: LossConfig(softmax=1.0, triplet=0.0, label_smooth=0.1))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="amsgrad", lr=0.003, weight_decay=5e-4))
    sched: SchedConfig = field(default_factory=lambda: SchedConfig(name="cosine"))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_epoch=24, max_steps_per_epoch=117, seed=1, channels_last=False, output_dir="runs/nas"))
    nas: NasOptions = field(default_factory=_nas_options)


# ----------------------------------------------------------------------------------------------
# building from plain data, with checks


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        return "a list"
    if origin is dict:
        return "a mapping"
    return {str: "a string", int: "an integer", float: "a number", bool: "true/false",
            type(None): "nothing"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        if len(errors) > 1:
            raise ConfigError(f"{where}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}",
                              [where])
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}", [where])
    if origin is list:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]  # a single item where a list is expected
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}", [where])
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}", [where])
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}", [where])
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}", [where])
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads "1e-4" as a string
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}", [where])
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}", [where])
    raise ConfigError(f"{where}: unsupported type {tp}", [where])  # pragma: no cover


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys, got {data!r}", [where])
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        key = str(key)
        here = f"{where}.{key}" if where else key
        if key not in names:
            raise ConfigError(f"unknown key {here!r}.{did_you_mean(key, names)} Valid keys: {', '.join(names)}",
                              [here])
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value or {}, here)
        else:
            kwargs[key] = _coerce(value, tp, here)
    return cls(**kwargs)


DEFAULT_ORIGIN = "the default"


def origin_of(key: str, origins: Mapping[str, str], default: str = DEFAULT_ORIGIN) -> str:
    """Where the setting ``key`` (``data.sources[0]``, ``data.synthetic.num_ids`` ...) came
    from: the origin recorded for it or for the nearest section above it."""
    parts = key.split("[", 1)[0].split(".")
    for n in range(len(parts), 0, -1):
        found = origins.get(".".join(parts[:n]))
        if found is not None:
            return found
    return default


def with_origin(exc: ConfigError, origins: Mapping[str, str], default: str = DEFAULT_ORIGIN) -> ConfigError:
    """``exc`` with its message prefixed by the origin of its first setting, and the origins
    of the other settings it involves added when they differ."""
    keys = exc.keys or []
    if not keys:
        return ConfigError(f"{default}: {exc}", keys)
    first = origin_of(keys[0], origins, default)
    others = [(k, origin_of(k, origins, default)) for k in keys[1:]]
    others = [f"{k} from {o}" for k, o in others if o != first]
    note = f" ({'; '.join(others)})" if others else ""
    return ConfigError(f"{first}: {exc}{note}", keys)


def _record_origins(data: Any, prefix: str, origin: str, origins: dict[str, str]) -> None:
    origins[prefix] = origin
    if isinstance(data, Mapping) and prefix.count(".") < 1:  # sections: one entry per key
        for k, v in data.items():
            _record_origins(v, f"{prefix}.{k}" if prefix else str(k), origin, origins)


def config_from_dict(data: Mapping[str, Any] | None, source: str = "config",
                     origins: Mapping[str, str] | None = None) -> Config:
    """Build a :class:`Config` from nested plain data.

    Errors name where the bad setting came from: ``origins`` maps dotted keys to their origin
    (as :func:`load_config` records them); keys without an entry are blamed on ``source``.
    """
    return _from_data(Config, data or {}, source, origins)


def _from_data(cls: type, data: Mapping[str, Any], source: str = "config",
               origins: Mapping[str, str] | None = None) -> Any:
    """``cls`` (a recipe class) from plain data laid over ``cls()``'s defaults, validated."""
    if origins is None:
        origins = {}
        for section, values in data.items():
            _record_origins(values, str(section), source, origins)
    full = cls().to_dict()
    _merge(full, data)
    try:
        cfg = _build(cls, full, "")
        validate(cfg)
    except ConfigError as exc:
        raise with_origin(exc, origins) from None
    return cfg


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        child = node.get(p)
        if not isinstance(child, dict):
            child = {}
            node[p] = child
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=0.01"`` -> ``("optim.lr", 0.01)``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text}: an override must look like section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _check_override_key(dotted: str, recipe: type | None = None) -> None:
    parts = dotted.split(".")
    cls: Any = Config if recipe is None else recipe
    for i, p in enumerate(parts):
        if not dataclasses.is_dataclass(cls):
            if i == len(parts) - 1 or typing.get_origin(cls) is dict:
                return
            raise ConfigError(f"override key {dotted!r}: {'.'.join(parts[:i])} has no sub-keys")
        names = [f.name for f in dataclasses.fields(cls)]
        if p not in names:
            raise ConfigError(f"unknown key {'.'.join(parts[:i + 1])!r}.{did_you_mean(p, names)} "
                              f"Valid keys: {', '.join(names)}")
        cls = typing.get_type_hints(cls)[p]
        if typing.get_origin(cls) is dict:
            return


def load_config(
    path: str | Path | None = None, overrides: Iterable[str] = (), base: Mapping[str, Any] | None = None,
    base_source: str = "the built-in recipe",
) -> Config:
    """Read a YAML recipe (or start from defaults) and apply dotted overrides.

    Args:
        path: YAML file or packaged recipe name (:mod:`omnireid.recipes`); ``None`` starts
            from the defaults.
        overrides: ``"section.key=value"`` strings (values parsed as YAML: ``[1, 2]``, ``true``).
        base: plain data applied before the file (used by the demo).
        base_source: how errors name a setting that came from ``base``.

    Raises:
        ConfigError: naming where the bad setting came from (``--set KEY=VALUE``, the file,
            ``base_source`` or the default) and the bad key/value.
        MissingFileError: when ``path`` does not exist.
    """
    data, origins = load_plain(path, overrides, base, base_source, check_key=_check_override_key)
    return config_from_dict(data, origins=origins)


def load_nas_config(
    path: str | Path | None = None, overrides: Iterable[str] = (), base: Mapping[str, Any] | None = None,
    base_source: str = "the built-in recipe",
) -> NasConfig:
    """Read a YAML architecture-search recipe (see :class:`NasConfig`) like :func:`load_config`;
    unset keys keep :class:`NasConfig`'s defaults (the CPU recipe on the built-in data)."""
    data, origins = load_plain(path, overrides, base, base_source,
                               check_key=lambda key: _check_override_key(key, NasConfig))
    return _from_data(NasConfig, data, origins=origins)


def load_plain(
    path: str | Path | None, overrides: Iterable[str], base: Mapping[str, Any] | None,
    base_source: str, check_key=None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The merged plain data of ``base``, the file at ``path`` and ``overrides``, and the origin
    of every key (``origins["train.amp"] = "--set train.amp=bf32"``). ``check_key(dotted)``
    vets each override key."""
    data: dict[str, Any] = _deep_copy(base or {})
    origins: dict[str, str] = {}
    for section, values in data.items():
        _record_origins(values, str(section), base_source, origins)
    if path is not None:
        recipe = read_recipe_file(path)
        for section, values in recipe.items():
            _record_origins(values, str(section), str(path), origins)
        _merge(data, recipe)
    for text in overrides:
        key, value = parse_override(text)
        if check_key is not None:
            try:
                check_key(key)
            except ConfigError as exc:
                raise ConfigError(f"--set {text}: {exc}", exc.keys) from None
        _set_dotted(data, key, value)
        for known in [k for k in origins if k == key or k.startswith(key + ".")]:
            del origins[known]
        origins[key] = f"--set {text}"
    return data, origins


def read_recipe_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML recipe (a file, or the name of a packaged recipe such as ``"demo"``) as
    plain sections, with errors that name the file."""
    path = resolve_recipe(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (a YAML recipe is UTF-8 text)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return loaded


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for k, v in new.items():
        if v is None and isinstance(into.get(k), dict):
            continue  # an empty section (``nas:`` with nothing under it) keeps its defaults
        if isinstance(v, Mapping) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = _deep_copy(v) if isinstance(v, Mapping) else v


_CHOICES = {
    ("optim", "name"): tuple(OPTIMIZERS),
    ("sched", "name"): tuple(SCHEDULES),
    ("train", "amp"): ("none", *AMP_DTYPES),
    ("test", "dist_metric"): DISTANCE_METRICS,
    ("data", "sampler"): tuple(SAMPLERS),
    ("data", "on_bad_image"): ("error", "skip"),
    ("nas", "mode"): NAS_MODES,
    ("nas", "arch_optim"): ARCH_OPTIMIZERS,
    ("nas", "arch_schedule"): ARCH_SCHEDULES,
}

#: The smallest image side every model accepts (OSNet halves its input four times).
MIN_IMAGE_SIDE = 16


def _check(ok: bool, message: str, *keys: str) -> None:
    if not ok:
        raise ConfigError(message, list(keys))


def validate(cfg: Config | NasConfig) -> None:
    """Check values that types alone cannot (choices, ranges, dataset settings).

    Raises:
        ConfigError: whose ``keys`` name the settings involved.
    """
    for (section, key), choices in _CHOICES.items():
        if not hasattr(cfg, section):
            continue
        value = getattr(getattr(cfg, section), key)
        _check(value in choices, f"{section}.{key}={value!r} is not one of {', '.join(choices)}."
               f"{did_you_mean(str(value), choices)}", f"{section}.{key}")
    d, t = cfg.data, cfg.train
    _check(cfg.optim.lr > 0, f"optim.lr must be > 0, got {cfg.optim.lr}", "optim.lr")
    _check(cfg.optim.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {cfg.optim.weight_decay}",
           "optim.weight_decay")
    _check(cfg.optim.grad_clip >= 0, f"optim.grad_clip must be >= 0 (0: off), got {cfg.optim.grad_clip}",
           "optim.grad_clip")
    _check(t.max_epoch >= 1, f"train.max_epoch must be >= 1, got {t.max_epoch}", "train.max_epoch")
    _check(t.num_threads >= 0, f"train.num_threads must be >= 0 (0: torch's default), got {t.num_threads}",
           "train.num_threads")
    _check(t.max_steps_per_epoch >= 0, f"train.max_steps_per_epoch must be >= 0 (0: no cap), got "
           f"{t.max_steps_per_epoch}", "train.max_steps_per_epoch")
    _check(t.print_freq >= 0, f"train.print_freq must be >= 0 (0: one line per epoch only), got {t.print_freq}",
           "train.print_freq")
    _check(bool(t.output_dir.strip()), "train.output_dir is empty", "train.output_dir")
    _check(d.batch_size >= 1, f"data.batch_size must be >= 1, got {d.batch_size}", "data.batch_size")
    _check(d.num_instances >= 1, f"data.num_instances must be >= 1, got {d.num_instances}", "data.num_instances")
    _check(d.num_workers >= 0, f"data.num_workers must be >= 0, got {d.num_workers}", "data.num_workers")
    for key in ("height", "width"):
        value = getattr(d, key)
        _check(value >= MIN_IMAGE_SIDE, f"data.{key}={value} is too small: the models need images of at "
               f"least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels (256x128 is usual)", f"data.{key}")
    if isinstance(cfg, Config):
        _check(cfg.test.batch_size >= 1, f"test.batch_size must be >= 1, got {cfg.test.batch_size}",
               "test.batch_size")
    _check(bool(d.sources), "data.sources must name at least one dataset", "data.sources")
    _check(cfg.sched.name not in ("single_step", "multi_step") or bool(cfg.sched.stepsize),
           f"sched.name={cfg.sched.name} needs sched.stepsize", "sched.stepsize", "sched.name")
    _check(cfg.loss.softmax > 0 or cfg.loss.triplet > 0,
           "at least one of loss.softmax and loss.triplet must have a positive weight", "loss.softmax", "loss.triplet")
    _check(cfg.loss.triplet <= 0 or d.sampler == "identity",
           f"loss.triplet needs data.sampler=identity (P x K batches), not {d.sampler!r}", "loss.triplet",
           "data.sampler")
    _check(t.device == "auto" or _device_ok(t.device), _device_message(t.device), "train.device")
    _check(t.amp != "fp16" or t.device not in ("auto", "cpu") or _has_gpu(),
           "train.amp=fp16 needs a GPU; use bf16 on the CPU", "train.amp")
    for section in ("sources", "targets"):
        _check_datasets(getattr(d, section), f"data.{section}")
    if isinstance(cfg, NasConfig):
        _validate_nas(cfg.nas)


def _validate_nas(nas: NasOptions) -> None:
    _check(nas.init_temperature > 0 and nas.min_temperature > 0, "nas temperatures must be > 0",
           "nas.init_temperature", "nas.min_temperature")
    _check(0 < nas.decay_rate <= 1, f"nas.decay_rate must be in (0, 1], got {nas.decay_rate}", "nas.decay_rate")
    _check(nas.width > 0, f"nas.width must be > 0, got {nas.width}", "nas.width")
    _check(nas.child_width is None or nas.child_width > 0, f"nas.child_width must be > 0, got {nas.child_width}",
           "nas.child_width")
    _check(nas.arch_lr >= 0, f"nas.arch_lr must be >= 0, got {nas.arch_lr}", "nas.arch_lr")
    _check(nas.arch_optim == "same" or nas.arch_lr > 0, f"nas.arch_optim={nas.arch_optim} needs nas.arch_lr > 0",
           "nas.arch_optim", "nas.arch_lr")
    _check(nas.arch_schedule == "same" or nas.arch_optim != "same",
           "nas.arch_schedule=constant needs an optimiser of their own (nas.arch_optim adam or sgd)",
           "nas.arch_schedule", "nas.arch_optim")
    _check(nas.arch_weight_decay >= 0, f"nas.arch_weight_decay must be >= 0, got {nas.arch_weight_decay}",
           "nas.arch_weight_decay")
    _check(nas.arch_start_epoch >= 0, f"nas.arch_start_epoch must be >= 0, got {nas.arch_start_epoch}",
           "nas.arch_start_epoch")


def _check_datasets(items: list, where: str) -> None:
    specs = []
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        try:
            spec = parse_dataset_spec(item, here)
            check_spec(spec, here)
        except OmnireidError as exc:  # unknown reader or option, malformed entry
            raise ConfigError(str(exc), [here]) from None
        specs.append(spec)
    try:
        check_unique_labels(specs, where)
    except OmnireidError as exc:
        raise ConfigError(str(exc), [where]) from None


def _has_gpu() -> bool:
    return torch.cuda.is_available()


def _device_ok(device: str) -> bool:
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        return False
    if dev.type == "cuda":
        return torch.cuda.is_available() and (dev.index is None or dev.index < torch.cuda.device_count())
    if dev.type == "mps":
        return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return dev.type == "cpu"


def _device_message(device: str) -> str:
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        return f"train.device={device!r} is not a device (auto, cpu, cuda, cuda:N)"
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return (f"train.device={device!r}: no CUDA GPU is available here" if count == 0 else
                f"train.device={device!r}: this machine has {count} GPU(s) (cuda:0..cuda:{count - 1})")
    return f"train.device={device!r} is not available on this machine"


__all__ = [
    "ARCH_OPTIMIZERS", "Config", "ConfigError", "DataConfig", "LossConfig", "ModelConfig",
    "NasConfig", "NasOptions", "OptimConfig", "SchedConfig", "TestConfig", "TrainConfig",
    "config_from_dict", "load_config", "load_nas_config", "load_plain", "origin_of",
    "parse_override", "validate", "with_origin",
]
