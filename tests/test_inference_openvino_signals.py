"""OpenVINO runners created and freed in any order leave signal handling intact.

OpenVINO's CPU plugin gives the thread that loads it an alternate signal stack and puts the old
one back when its Core goes away; Cores freed in the other order than created left the main
thread's alternate stack pointing at freed memory, and the next Python-level signal handler (a
DataLoader's SIGCHLD handler, say) crashed the process. The runners share one Core
(:func:`omnireid.inference.runtime.openvino_core`) so this cannot happen. Each case runs in a
child process, so that a crash is a failed assertion here instead of the end of the test run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import openvino  # noqa: F401  # the dev extra installs it; missing must fail
import pytest
import torch

from omnireid.inference.export import export_openvino
from omnireid.models import create_model

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

CASE = textwrap.dedent('''
    import gc, signal, sys, threading
    from omnireid.inference.runtime import make_runner

    first = make_runner("openvino", sys.argv[1], num_threads=1)
    second = make_runner("openvino-bf16", sys.argv[1], num_threads=1)
    # freed in the order they were made, not the reverse
    del first
    gc.collect()
    del second
    gc.collect()
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # as a DataLoader with workers does
    signal.pthread_kill(threading.main_thread().ident, signal.SIGCHLD)
    subprocess_done = __import__("subprocess").run([sys.executable, "-c", "pass"]).returncode
    print("survived", subprocess_done, flush=True)
''')


def test_runners_freed_in_creation_order_then_a_python_signal_handler(tmp_path) -> None:
    torch.manual_seed(0)
    xml = export_openvino(create_model("osnet_x0_25").eval(), tmp_path / "ir" / "m.xml", (64, 32))
    done = subprocess.run([sys.executable, "-c", CASE, str(xml)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (f"the process ended with status {done.returncode} "
                                  f"(-11: segfault)\n{done.stdout}\n{done.stderr[-3000:]}")
    assert "survived 0" in done.stdout
