"""A faster memory allocator for the long-running commands (train, demo, nas, reproduce).

Preloading tcmalloc makes eager PyTorch on the CPU several times faster than glibc malloc
(docs/deployment.md); the commands restart themselves with it when it is installed. Without it,
they set glibc's malloc to keep freed memory for reuse (:func:`keep_freed_memory`): by default
glibc hands large freed blocks back to the kernel, and a training step that allocates its
activations again then pays a page fault for every 4 KiB of them (docs/training.md, "Precision,
speed, determinism").
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from pathlib import Path

TCMALLOC_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
)


def find_tcmalloc() -> str | None:
    """Path of an installed tcmalloc library, if any."""
    return next((p for p in TCMALLOC_CANDIDATES if os.path.exists(p)), None)


GLIBC_MALLOC_SETTINGS = {
    # (environment variable, mallopt parameter number, value)
    "mmap_threshold": ("MALLOC_MMAP_THRESHOLD_", -3, 32 * 1024 * 1024),  # glibc's largest allowed
    "mmap_max": ("MALLOC_MMAP_MAX_", -4, 0),
    "trim_threshold": ("MALLOC_TRIM_THRESHOLD_", -1, 2**31 - 1),
}
"""Blocks of any size come from the heap rather than from their own mappings, and up to 2 GiB of
free memory at the top of the heap is kept rather than returned to the kernel.

The mmap threshold alone cannot go above 32 MiB, and osnet_x1_0's largest activations at batch
32 (64 channels at 128x64, 256 at 64x32, in bf16) are exactly 32 MiB: mapped afresh every step,
they paid a page fault per 4 KiB. ``mmap_max`` 0 sends them to the heap too (glibc still maps
memory where a thread's heap cannot grow). The training step of osnet_x1_0 ran 1.03-1.18x faster
with it in five alternating rounds (docs/training.md)."""
OTHER_ALLOCATORS = ("tcmalloc", "jemalloc", "mimalloc")
NO_MALLOC_TUNING_ENV = "OMNIREID_NO_MALLOC_TUNING"


def prepare_allocator(tcmalloc: bool = True) -> None:
    """What the long-running commands do first: restart with tcmalloc when it is installed and
    ``tcmalloc`` is true (:func:`reexec_with_tcmalloc`; does not return then), otherwise keep
    glibc's freed memory (:func:`keep_freed_memory`). Only for a command started from the shell:
    a program that calls the commands' code keeps its own allocator settings."""
    if not _started_as_command():
        return
    reexec_with_tcmalloc(tcmalloc)
    keep_freed_memory()


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed memory for reuse (:data:`GLIBC_MALLOC_SETTINGS`) in this
    process, and through the environment in the processes it starts (data-loader workers, the
    demo's training jobs). A value the user set in the environment is kept. Does nothing, and
    returns False, off glibc, with another allocator preloaded, or with
    ``OMNIREID_NO_MALLOC_TUNING=1``; True when glibc accepted the settings.

    The process then keeps the memory of its largest step instead of returning it between steps,
    which is what a training loop that allocates the same tensors every step wants.
    """
    if os.environ.get(NO_MALLOC_TUNING_ENV, "") not in ("", "0"):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ.get("LD_PRELOAD", "") for name in OTHER_ALLOCATORS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = True
    for env, param, value in GLIBC_MALLOC_SETTINGS.values():
        try:
            value = int(os.environ.setdefault(env, str(value)))
        except ValueError:
            continue  # the user's own (malformed) setting: glibc ignored it, so do we
        ok = mallopt(param, min(value, 2**31 - 1)) == 1 and ok
    return ok


def _started_as_command() -> bool:
    return "pytest" not in sys.modules and Path(sys.argv[0]).name in ("omnireid", "__main__.py")


def reexec_with_tcmalloc(enabled: bool) -> None:
    """Restart this command with tcmalloc preloaded (a faster allocator for eager PyTorch on the
    CPU) when one is installed and it is not loaded yet. Only for a command started from the
    shell (never inside another program, never under torchrun)."""
    if not enabled or "tcmalloc" in os.environ.get("LD_PRELOAD", "") or "WORLD_SIZE" in os.environ:
        return
    if os.environ.get("OMNIREID_NO_TCMALLOC") or not _started_as_command():
        return
    lib = find_tcmalloc()
    if lib is None:
        return
    env = dict(os.environ, LD_PRELOAD=":".join(filter(None, [lib, os.environ.get("LD_PRELOAD", "")])))
    print(f"(using the tcmalloc allocator {lib} for speed; OMNIREID_NO_TCMALLOC=1 turns this off)",
          flush=True)
    os.execve(sys.executable, [sys.executable, "-m", "omnireid", *sys.argv[1:]], env)
