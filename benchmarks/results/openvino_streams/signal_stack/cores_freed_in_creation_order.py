"""Print the main thread's alternate signal stack as two OpenVINO Cores are made and freed in
creation order (not the reverse), and whether the final one is still mapped memory."""

import ctypes
import faulthandler
import gc

import openvino as ov


class StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


libc = ctypes.CDLL(None, use_errno=True)


def altstack(tag: str) -> int:
    st = StackT()
    libc.sigaltstack(None, ctypes.byref(st))
    print(f"{tag}: sp={st.ss_sp and hex(st.ss_sp)} size={st.ss_size}", flush=True)
    return st.ss_sp


def mapped(addr: int) -> str | None:
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return line.strip()
    return None


faulthandler.enable()
altstack("faulthandler")
a = ov.Core()
a.get_property("CPU", "FULL_DEVICE_NAME")
first = altstack("core A's CPU plugin loaded")
b = ov.Core()
b.get_property("CPU", "FULL_DEVICE_NAME")
altstack("core B's CPU plugin loaded")
del a
gc.collect()
altstack("A freed first")
del b
gc.collect()
final = altstack("then B freed")
print("main thread's alternate signal stack now points at A's freed stack:", final == first)
print("mapping holding it:", mapped(final))
