"""pytest plugin (experiment 15): SIGCHLD back to its default before the first inference test."""

import signal


def pytest_runtest_setup(item):
    if "test_inference" in item.nodeid:
        h = signal.getsignal(signal.SIGCHLD)
        if h not in (signal.SIG_DFL, None):
            print(f"\nresetting SIGCHLD handler {h!r}", flush=True)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
