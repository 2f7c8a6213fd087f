"""Optional extras (faiss, onnx, openvino, matplotlib, h5py, scipy ...), imported where used."""

from __future__ import annotations

import importlib
from types import ModuleType

from omnireid.errors import MissingExtraError


def require(module: str, extra: str, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` saying which extra installs it.

    ``purpose`` completes the message ("reading cuhk-03.mat needs h5py: ...").
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        what = f"{purpose} needs {package}" if purpose else f"{package} is needed here"
        raise MissingExtraError(f"{what}: pip install 'omnireid[{extra}]'") from exc


__all__ = ["require"]
