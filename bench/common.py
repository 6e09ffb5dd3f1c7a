"""What the benchmarks share: each variant runs in its own subprocess, so its wall time and
peak RSS (ru_maxrss of that process) are its own, never the parent's."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

PLATFORM_VARS = ("DATAENG_WAREHOUSE_URL", "DATAENG_LAKE_URL", "DATAENG_LANDING_URL", "DATAENG_SOURCE_URL")


def run_variant(script: str, name: str, home: Path) -> tuple[float, float, dict]:
    """Wall seconds, peak RSS (MiB) and the JSON result of `script --variant name --home home`.

    The parent stays small (it imports nothing heavy and generates nothing itself): a forked
    child's high-water mark would otherwise start at the parent's resident size.
    """
    env = {**os.environ, "DATAENG_HOME": str(home)}
    for var in PLATFORM_VARS:
        env.pop(var, None)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, script, "--variant", name, "--home", str(home)], env=env,
                            stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    out = proc.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"variant {name} failed with exit code {os.waitstatus_to_exitcode(status)}")
    return seconds, usage.ru_maxrss / 1024, json.loads(out.strip().splitlines()[-1])
