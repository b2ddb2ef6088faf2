"""The watchdog of ``ibcheck.study.reaper``: when a driver is SIGKILLed, its descendants (a
grandchild that ignores SIGTERM; a local Ray's gcs_server, raylet, agents and workers) do not
outlive it."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ibcheck.study import reaper

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the watchdog reads /proc (Linux)")

# a driver with a child and a grandchild that both ignore SIGTERM and sleep; it starts the
# watchdog on itself unless REAPER_OFF is set, then prints the descendants' pids
SLEEPER = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
DRIVER = textwrap.dedent(f"""
    import os, subprocess, sys, time
    from ibcheck.study import reaper
    child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; "
                              "g = subprocess.Popen([sys.executable, '-c', {SLEEPER!r}]); "
                              "print(g.pid, flush=True); " + {SLEEPER!r}], stdout=subprocess.PIPE, text=True)
    grandchild = int(child.stdout.readline())
    if not os.environ.get("REAPER_OFF"):
        reaper.start()
    print(child.pid, grandchild, flush=True)
    time.sleep(120)
""")

RAY_DRIVER = textwrap.dedent("""
    import json, time
    from ibcheck.study import execute, reaper
    ray = execute.connect_ray(None)
    assert ray.get(ray.remote(lambda: 1).remote()) == 1  # a worker is up too
    print(json.dumps(reaper.descendants()), flush=True)
    time.sleep(300)
""")


def _alive(procs: dict[int, int]) -> dict[int, int]:
    return {pid: start for pid, start in procs.items() if reaper.start_time(pid) == start}


def _kill_and_wait(driver: subprocess.Popen, procs: dict[int, int], timeout: float) -> tuple[dict[int, int], float]:
    """SIGKILL the driver, then poll until ``procs`` are gone; (those still alive, seconds taken)."""
    driver.kill()
    driver.wait()
    killed = time.monotonic()
    while (left := _alive(procs)) and time.monotonic() - killed < timeout:
        time.sleep(0.1)
    return left, time.monotonic() - killed


def _clean_up(driver: subprocess.Popen, procs: dict[int, int]) -> None:
    """Whatever a failed test leaves: the driver and the processes listed (same start time only)."""
    if driver.poll() is None:
        driver.kill()
        driver.wait()
    if driver.stdout is not None:
        driver.stdout.close()
    for pid in _alive(procs):
        os.kill(pid, signal.SIGKILL)


def test_a_killed_drivers_grandchild_that_ignores_sigterm_is_killed():
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True)
    procs: dict[int, int] = {}
    try:
        line = driver.stdout.readline() if driver.stdout is not None else ""
        procs = {pid: start for pid in map(int, line.split()) if (start := reaper.start_time(pid)) is not None}
        assert len(procs) == 2, f"the driver printed {line!r}"
        time.sleep(0.7)  # the watchdog has looked at least once (it also got them on its command line)
        left, _ = _kill_and_wait(driver, procs, timeout=10)
        assert not left, f"still alive 10 s after the driver was killed: {sorted(left)}"
    finally:
        _clean_up(driver, procs)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs ray")
def test_a_killed_drivers_local_ray_is_killed():
    driver = subprocess.Popen([sys.executable, "-c", RAY_DRIVER], stdout=subprocess.PIPE, text=True)
    procs: dict[int, int] = {}
    try:
        line = driver.stdout.readline() if driver.stdout is not None else ""
        procs = {int(pid): start for pid, start in json.loads(line or "{}").items()}
        assert len(procs) >= 3, f"expected Ray's processes (gcs_server, raylet, a worker, ...), got {line!r}"
        left, _ = _kill_and_wait(driver, procs, timeout=20)
        assert not left, f"still alive 20 s after the driver was killed: {sorted(left)}"
    finally:
        _clean_up(driver, procs)
