"""pytest plugin (experiment 18): as sigset.py, with SA_RESTART (signal.siginterrupt)."""

import signal


def _noop(signum, frame):
    pass

def pytest_configure(config):
    signal.signal(signal.SIGCHLD, _noop)
    signal.siginterrupt(signal.SIGCHLD, False)
    print("installed a no-op SIGCHLD handler with SA_RESTART", flush=True)
