"""Typed configuration: dataclasses, YAML files and dotted ``key=value`` overrides.

Two kinds of recipe share the sections and the one loader below:

* a training recipe, :class:`Config` (``model``, ``data``, ``loss``, ``optim``, ``sched``,
  ``train``, ``test``), read by :func:`load_config`;
* an architecture-search recipe, :class:`NasConfig` (``data``, ``loss``, ``optim``, ``sched``,
  ``train`` and ``nas``), read by :func:`load_nas_config`.

Anything not written keeps its default. Unknown keys are errors that name the file and suggest
the nearest valid key::

    cfg = load_config("configs/demo.yaml", overrides=["optim.lr=0.01", "train.max_epoch=3"])
    cfg.to_yaml()          # the resolved recipe, saved beside every run's outputs
    nas_cfg = load_nas_config("configs/nas.yaml", ["train.seed=2"])

Only :func:`omnireid.engine.fit`, :func:`omnireid.engine.nas.nas` and the CLI read a config
object; everything below them takes plain values.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from omnireid.models.supernet import SEARCH_MODES


class ConfigError(ValueError):
    """A recipe that cannot be used: unknown key, wrong type or bad value (message says where)."""


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
    evaluated separately. ``root`` is the data root (the cache folder for ``synthetic_*``).
    ``synthetic`` passes options to the synthetic generator (e.g. ``num_ids: 100``).
    """

    root: str | None = None
    sources: list[str] = field(default_factory=lambda: ["market1501"])
    targets: list[str] = field(default_factory=lambda: ["market1501"])
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
    -1: never). ``max_steps_per_epoch`` caps an epoch (0: no cap) for quick runs.
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
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.to_yaml())
        os.replace(tmp, path)
        return path


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
    ``optim.adam_beta1/2`` for adam); the learning-rate schedule of ``sched`` applies to them
    too. ``arch_start_epoch``: epochs of network-only training before ``alpha`` moves (0: from
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
    arch_start_epoch: int = 0


def _nas_data() -> DataConfig:
    return DataConfig(sources=["synthetic_a", "synthetic_c"], targets=[], height=64, width=32,
                      batch_size=32, sampler="random", num_workers=0, color_jitter=True)


def _nas_options() -> NasOptions:
    return NasOptions(width=0.25, decay_every=1, arch_optim="adam", arch_lr=0.05)


@dataclass
class NasConfig(_Recipe):
    """Everything ``omnireid nas`` reads; the defaults are the CPU recipe on the built-in data
    (``configs/nas.yaml`` writes them out with their reasons; ``configs/nas_paper.yaml`` is the
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
        max_epoch=6, max_steps_per_epoch=40, seed=1, channels_last=False, output_dir="runs/nas"))
    nas: NasOptions = field(default_factory=_nas_options)


# ----------------------------------------------------------------------------------------------
# building from plain data, with checks


def _suggest(name: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(map(repr, close))}?" if close else ""


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
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is list:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]  # a single item where a list is expected
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads "1e-4" as a string
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported type {tp}")  # pragma: no cover


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        key = str(key)
        here = f"{where}.{key}" if where else key
        if key not in names:
            raise ConfigError(f"unknown key {here!r}.{_suggest(key, names)} Valid keys: {', '.join(names)}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value or {}, here)
        else:
            kwargs[key] = _coerce(value, tp, here)
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any] | None, source: str = "config") -> Config:
    """Build a :class:`Config` from nested plain data; errors name ``source``."""
    return _from_data(Config, data or {}, source)


def _from_data(cls: type, data: Mapping[str, Any], source: str) -> Any:
    """``cls`` (a recipe class) from plain data laid over ``cls()``'s defaults, validated."""
    full = cls().to_dict()
    _merge(full, data)
    try:
        cfg = _build(cls, full, "")
        validate(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
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
        raise ConfigError(f"override {text!r} must look like section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _check_override_key(dotted: str, recipe: type) -> None:
    parts = dotted.split(".")
    cls: Any = recipe
    for i, p in enumerate(parts):
        if not dataclasses.is_dataclass(cls):
            if i == len(parts) - 1 or typing.get_origin(cls) is dict:
                return
            raise ConfigError(f"override key {dotted!r}: {'.'.join(parts[:i])} has no sub-keys")
        names = [f.name for f in dataclasses.fields(cls)]
        if p not in names:
            raise ConfigError(f"unknown key {'.'.join(parts[:i + 1])!r}.{_suggest(p, names)} "
                              f"Valid keys: {', '.join(names)}")
        cls = typing.get_type_hints(cls)[p]
        if typing.get_origin(cls) is dict:
            return


def load_config(
    path: str | Path | None = None, overrides: Iterable[str] = (), base: Mapping[str, Any] | None = None
) -> Config:
    """Read a YAML training recipe (or start from defaults) and apply dotted overrides.

    Args:
        path: YAML file; ``None`` starts from the defaults.
        overrides: ``"section.key=value"`` strings (values parsed as YAML: ``[1, 2]``, ``true``).
        base: plain data applied before the file (used by the demo).

    Raises:
        ConfigError: naming the file (or override) and the bad key/value.
        FileNotFoundError: when ``path`` does not exist.
    """
    return _load(Config, path, overrides, base)


def load_nas_config(
    path: str | Path | None = None, overrides: Iterable[str] = (), base: Mapping[str, Any] | None = None
) -> NasConfig:
    """Read a YAML architecture-search recipe (see :class:`NasConfig`) like :func:`load_config`;
    unset keys keep :class:`NasConfig`'s defaults (the CPU recipe on the built-in data)."""
    return _load(NasConfig, path, overrides, base)


def _load(recipe: type, path: str | Path | None, overrides: Iterable[str],
          base: Mapping[str, Any] | None) -> Any:
    """The one load path: defaults <- ``base`` <- the file <- each override, then validation.
    Errors name the file, or the override that introduced them."""
    data: dict[str, Any] = _deep_copy(base or {})
    source = "config"
    if path is not None:
        source = str(path)
        _merge(data, read_recipe_file(path))
        _from_data(recipe, data, source)  # errors of the file name the file
    for text in overrides:
        key, value = parse_override(text)
        try:
            _check_override_key(key, recipe)
        except ConfigError as exc:
            raise ConfigError(f"--set {text}: {exc}") from None
        _set_dotted(data, key, value)
        source = f"--set {text}"
        _from_data(recipe, data, source)
    return _from_data(recipe, data, source)


def read_recipe_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML recipe file as plain sections, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
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
    ("optim", "name"): ("amsgrad", "adam", "sgd", "rmsprop"),
    ("sched", "name"): ("constant", "single_step", "multi_step", "cosine"),
    ("train", "amp"): ("none", "bf16", "fp16"),
    ("test", "dist_metric"): ("euclidean", "cosine"),
    ("data", "sampler"): ("random", "identity", "camera", "dataset"),
    ("nas", "mode"): SEARCH_MODES,
    ("nas", "arch_optim"): ARCH_OPTIMIZERS,
}


def validate(cfg: Config | NasConfig) -> None:
    """Check values that types alone cannot (choices, ranges) in a training or search recipe."""
    for (section, key), choices in _CHOICES.items():
        if not hasattr(cfg, section):
            continue
        value = getattr(getattr(cfg, section), key)
        if value not in choices:
            raise ConfigError(f"{section}.{key}={value!r} is not one of {', '.join(choices)}."
                              f"{_suggest(value, choices)}")
    if cfg.optim.lr <= 0:
        raise ConfigError(f"optim.lr must be > 0, got {cfg.optim.lr}")
    if cfg.train.max_epoch < 1:
        raise ConfigError(f"train.max_epoch must be >= 1, got {cfg.train.max_epoch}")
    if cfg.data.batch_size < 1:
        raise ConfigError(f"data.batch_size must be >= 1, got {cfg.data.batch_size}")
    if not cfg.data.sources:
        raise ConfigError("data.sources must name at least one dataset")
    if cfg.sched.name in ("single_step", "multi_step") and not cfg.sched.stepsize:
        raise ConfigError(f"sched.name={cfg.sched.name} needs sched.stepsize")
    if cfg.loss.softmax <= 0 and cfg.loss.triplet <= 0:
        raise ConfigError("at least one of loss.softmax and loss.triplet must have a positive weight")
    if cfg.loss.triplet > 0 and cfg.data.sampler != "identity":
        raise ConfigError("loss.triplet needs data.sampler=identity (P x K batches)")
    if isinstance(cfg, NasConfig):
        _validate_nas(cfg.nas)


def _validate_nas(nas: NasOptions) -> None:
    checks = [
        (nas.init_temperature > 0 and nas.min_temperature > 0, "nas temperatures must be > 0"),
        (0 < nas.decay_rate <= 1, f"nas.decay_rate must be in (0, 1], got {nas.decay_rate}"),
        (nas.width > 0, f"nas.width must be > 0, got {nas.width}"),
        (nas.child_width is None or nas.child_width > 0, f"nas.child_width must be > 0, got {nas.child_width}"),
        (nas.arch_lr >= 0, f"nas.arch_lr must be >= 0, got {nas.arch_lr}"),
        (nas.arch_optim == "same" or nas.arch_lr > 0,
         f"nas.arch_optim={nas.arch_optim} needs nas.arch_lr > 0"),
        (nas.arch_weight_decay >= 0, f"nas.arch_weight_decay must be >= 0, got {nas.arch_weight_decay}"),
        (nas.arch_start_epoch >= 0, f"nas.arch_start_epoch must be >= 0, got {nas.arch_start_epoch}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


__all__ = [
    "ARCH_OPTIMIZERS", "Config", "ConfigError", "DataConfig", "LossConfig", "ModelConfig",
    "NasConfig", "NasOptions", "OptimConfig", "SchedConfig", "TestConfig", "TrainConfig",
    "config_from_dict", "load_config", "load_nas_config", "parse_override", "validate",
]
