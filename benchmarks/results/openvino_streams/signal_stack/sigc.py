"""pytest plugin (experiment 20): getpid as a C-level SIGCHLD handler via glibc signal() (no SA_ONSTACK)."""

import ctypes
import signal


def pytest_configure(config):
    libc = ctypes.CDLL(None)
    libc.signal.restype = ctypes.c_void_p
    libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
    fn = ctypes.cast(libc.getpid, ctypes.c_void_p)
    old = libc.signal(int(signal.SIGCHLD), fn)
    print(f"installed getpid() as a C-level SIGCHLD handler (old {old})", flush=True)
