"""Two OpenVINO Cores freed in creation order ("non-lifo") or in reverse ("lifo"), then one
SIGCHLD to the main thread's Python-level handler. Non-lifo ends with status 139."""

import gc
import signal
import sys
import threading

import openvino as ov

a = ov.Core()
a.get_property("CPU", "FULL_DEVICE_NAME")
b = ov.Core()
b.get_property("CPU", "FULL_DEVICE_NAME")
if sys.argv[1] == "non-lifo":
    del a
    gc.collect()
    del b
    gc.collect()
else:
    del b
    gc.collect()
    del a
    gc.collect()
signal.signal(signal.SIGCHLD, lambda s, f: None)  # a Python-level handler, as a DataLoader installs
signal.pthread_kill(threading.main_thread().ident, signal.SIGCHLD)
print("survived", flush=True)
