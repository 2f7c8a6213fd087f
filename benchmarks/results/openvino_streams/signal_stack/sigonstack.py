"""pytest plugin (experiment 21): the same C handler via sigaction with SA_ONSTACK (SIGFLAGS in hex)."""

import ctypes
import os
import signal


class SigAction(ctypes.Structure):
    _fields_ = [("sa_handler", ctypes.c_void_p), ("sa_mask", ctypes.c_ulong * 16),
                ("sa_flags", ctypes.c_int), ("sa_restorer", ctypes.c_void_p)]

def pytest_configure(config):
    libc = ctypes.CDLL(None, use_errno=True)
    act = SigAction()
    act.sa_handler = ctypes.cast(libc.getpid, ctypes.c_void_p).value
    act.sa_flags = int(os.environ.get("SIGFLAGS", "0x08000000"), 16)
    rc = libc.sigaction(int(signal.SIGCHLD), ctypes.byref(act), None)
    print(f"C-level SIGCHLD handler, sa_flags {act.sa_flags:#x}, rc {rc}", flush=True)
