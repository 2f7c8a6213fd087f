"""A faster memory allocator for the long-running commands (train, demo, nas, reproduce).

Preloading tcmalloc makes eager PyTorch on the CPU several times faster than glibc malloc
(docs/deployment.md); the commands restart themselves with it when it is installed.
"""

from __future__ import annotations

import os
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


def reexec_with_tcmalloc(enabled: bool) -> None:
    """Restart this command with tcmalloc preloaded (a faster allocator for eager PyTorch on the
    CPU) when one is installed and it is not loaded yet. Only for a command started from the
    shell (never inside another program, never under torchrun)."""
    if not enabled or "tcmalloc" in os.environ.get("LD_PRELOAD", "") or "WORLD_SIZE" in os.environ:
        return
    if os.environ.get("OMNIREID_NO_TCMALLOC") or "pytest" in sys.modules:
        return
    if Path(sys.argv[0]).name not in ("omnireid", "__main__.py"):
        return
    lib = find_tcmalloc()
    if lib is None:
        return
    env = dict(os.environ, LD_PRELOAD=":".join(filter(None, [lib, os.environ.get("LD_PRELOAD", "")])))
    print(f"(using the tcmalloc allocator {lib} for speed; OMNIREID_NO_TCMALLOC=1 turns this off)",
          flush=True)
    os.execve(sys.executable, [sys.executable, "-m", "omnireid", *sys.argv[1:]], env)
