"""The long-running commands' allocator settings: glibc malloc kept from returning freed memory."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from omnireid.cli.allocator import (
    GLIBC_MALLOC_SETTINGS,
    NO_MALLOC_TUNING_ENV,
    keep_freed_memory,
    prepare_allocator,
)

ENVS = [env for env, _param, _value in GLIBC_MALLOC_SETTINGS.values()]
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _clean_env() -> dict[str, str]:
    """This environment without any allocator setting, preload or opt-out."""
    return {k: v for k, v in os.environ.items() if k not in ENVS and k not in ("LD_PRELOAD", NO_MALLOC_TUNING_ENV)}


def _in_child(extra_env: dict[str, str]) -> dict:
    """keep_freed_memory() in a fresh interpreter (mallopt changes the whole process, so not in
    this one); returns its result and the environment it leaves for child processes."""
    env = _clean_env()
    env.update(extra_env)
    code = ("import json, os; from omnireid.cli.allocator import keep_freed_memory as k; r = k(); "
            f"print(json.dumps({{'applied': r, 'env': {{e: os.environ.get(e) for e in {ENVS!r}}}}}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_glibc_accepts_the_settings_and_children_inherit_them() -> None:
    got = _in_child({})
    assert got["applied"] is GLIBC  # mallopt returned 1 for every setting
    if GLIBC:
        assert got["env"] == {env: str(value) for env, _p, value in GLIBC_MALLOC_SETTINGS.values()}


def test_a_users_own_setting_is_kept() -> None:
    env, _param, _value = GLIBC_MALLOC_SETTINGS["trim_threshold"]
    got = _in_child({env: "12345"})
    assert got["env"][env] == "12345"
    assert got["applied"] is GLIBC


@pytest.mark.parametrize("extra", [{NO_MALLOC_TUNING_ENV: "1"}, {"LD_PRELOAD": "/opt/lib/libtcmalloc_minimal.so.4"}])
def test_switched_off_or_another_allocator_leaves_malloc_alone(monkeypatch, extra) -> None:
    for env in ENVS:
        monkeypatch.delenv(env, raising=False)
    for k, v in extra.items():
        monkeypatch.setenv(k, v)
    assert keep_freed_memory() is False
    assert all(env not in os.environ for env in ENVS)


def test_code_that_calls_the_commands_keeps_its_allocator(monkeypatch) -> None:
    """prepare_allocator() acts only for a command started from the shell (not under pytest)."""
    for env in ENVS:
        monkeypatch.delenv(env, raising=False)
    prepare_allocator()
    assert all(env not in os.environ for env in ENVS)


@pytest.mark.skipif(not GLIBC, reason="mallopt settings exist only in glibc")
def test_a_block_over_32_mib_comes_from_the_heap() -> None:
    """With the settings a 64 MiB block lies in the process's heap, where a freed block is reused
    as it is; without them glibc maps every block of 32 MiB or more afresh (and unmaps it when it
    is freed), so each new one is faulted in and zeroed again by the kernel."""
    code = ("import sys, numpy as np\n"
            "from omnireid.cli.allocator import keep_freed_memory\n"
            "if sys.argv[1] == 'on': assert keep_freed_memory()\n"
            "a = np.ones(8 * 1024 * 1024)\n"
            "heap = [line.split()[0] for line in open('/proc/self/maps') if line.rstrip().endswith('[heap]')]\n"
            "lo, hi = (int(x, 16) for x in heap[0].split('-')) if heap else (0, 0)\n"
            "print(lo <= a.ctypes.data < hi)\n")
    env = _clean_env()
    in_heap = {}
    for mode in ("off", "on"):
        out = subprocess.run([sys.executable, "-c", code, mode], env=env, capture_output=True, text=True,
                             check=True)
        in_heap[mode] = out.stdout.strip().splitlines()[-1]
    assert in_heap == {"off": "False", "on": "True"}
