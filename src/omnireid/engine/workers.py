"""Worker processes for commands that train several models side by side (``omnireid demo``,
``omnireid reproduce``).

:func:`training_pool` is a :class:`concurrent.futures.ProcessPoolExecutor` that starts its workers
with ``spawn`` (a fresh interpreter: no forked copy of the parent's threads or of a half-loaded
native library) and whose workers may start processes of their own (a training run's
DataLoader workers). When the ``with`` block ends with an exception -- a failed run, or Ctrl-C --
the workers that are still training are stopped at once instead of being waited for, so the
command ends with that error rather than minutes later.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and terminate the worker processes of ``pool``."""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    # older Pythons keep the worker processes in this private mapping, which shutdown() clears:
    # take them first
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        proc.join(timeout=30)


@contextlib.contextmanager
def training_pool(jobs: int, initializer: Callable[..., Any] | None = None,
                  initargs: tuple = ()) -> Iterator[ProcessPoolExecutor]:
    """``jobs`` spawned worker processes; stopped at once when the block raises."""
    pool = ProcessPoolExecutor(max_workers=max(1, int(jobs)), mp_context=get_context("spawn"),
                               initializer=initializer, initargs=initargs)
    try:
        yield pool
    except BaseException:
        stop_workers(pool)
        raise
    else:
        pool.shutdown(wait=True)


__all__ = ["stop_workers", "training_pool"]
