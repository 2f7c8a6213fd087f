"""pytest plugin (experiment 16): a no-op Python-level SIGCHLD handler from the start."""

import signal


def _noop(signum, frame):
    pass

def pytest_configure(config):
    signal.signal(signal.SIGCHLD, _noop)
    print("installed a no-op SIGCHLD handler", flush=True)
