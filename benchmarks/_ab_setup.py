"""What the A/B inference scripts share: their common options, the seeded model and batch, and
the line that says where they ran.

Used by ``bench_interleaving.py``, ``bench_int8_pools.py``, ``bench_openvino_int8_float_ops.py``
and ``bench_probe_size.py``: each compares variants of one path on one random batch.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

SIZE = (256, 128)


def ab_parser(doc: str, repeats: int) -> argparse.ArgumentParser:
    """An argument parser with ``--model --batch --threads --rounds --repeats``."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--model", default="osnet_x1_0")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--repeats", type=int, default=repeats, help="times the comparison is run")
    return p


def model_and_batch(args: argparse.Namespace) -> tuple[torch.nn.Module, np.ndarray]:
    """``args.model`` with seeded random weights (speed does not depend on them) and a seeded
    random ``(batch, 3, 256, 128)`` batch; sets the torch thread count."""
    from omnireid.models import create_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.model).eval()
    x = torch.randn(args.batch, 3, *SIZE, generator=torch.Generator().manual_seed(0)).numpy()
    return model, x


def machine_line(args: argparse.Namespace, extra: str = "") -> str:
    from omnireid.inference.autoselect import cpu_signature

    return (f"CPU: {cpu_signature()['name']} ({os.cpu_count()} CPUs{extra}); torch "
            f"{torch.__version__}; {args.model} at {SIZE[0]}x{SIZE[1]}, batch {args.batch}, "
            f"{args.threads} threads; load before: {os.getloadavg()[0]:.2f}")


def exported_graph(model: torch.nn.Module, int8: bool, prefix: str) -> Path:
    """``model`` exported to ONNX in a new temporary folder, quantised (synthetic calibration)
    when ``int8``: the one file every runner of a comparison reads."""
    from omnireid.inference.runtime import _exported

    return _exported(model, SIZE, Path(tempfile.mkdtemp(prefix=prefix)), None, int8=int8)


def path_runners(names: Sequence[str], graph: Path, args: argparse.Namespace) -> dict:
    """One runner per backend name on ``graph``, with the streams ``auto`` gives it for
    ``args.batch`` images on ``args.threads`` threads."""
    from omnireid.inference.runtime import make_runner, stream_count

    return {n: make_runner(n, graph, SIZE, num_threads=args.threads,
                           streams=stream_count(args.threads, args.batch, n)) for n in names}
