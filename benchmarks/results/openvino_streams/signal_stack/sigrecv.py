"""pytest plugin (experiment 19): SIGCHLD blocked in the main thread, received by one sleeping thread."""

import signal
import threading
import time


def _noop(signum, frame):
    pass

def _receiver():
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    while True:
        time.sleep(3600)

def pytest_configure(config):
    signal.signal(signal.SIGCHLD, _noop)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    threading.Thread(target=_receiver, daemon=True, name="sigchld-receiver").start()
    print("SIGCHLD blocked everywhere but one sleeping thread", flush=True)
