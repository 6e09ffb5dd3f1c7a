"""Python transform tasks used by the pipeline tests (`script: module:function`)."""

import os
import time
from pathlib import Path


def flaky(context, session, inputs):
    """Fails on its first two attempts, recording when each attempt started."""
    log = Path(os.environ["FLAKY_LOG"])
    with log.open("a") as f:
        f.write(f"{time.time()}\n")
    if len(log.read_text().splitlines()) < 3:
        raise ConnectionError("source briefly unavailable")
    return "SELECT 1 AS id"


def slow(context, session, inputs):
    time.sleep(5)
    return "SELECT 1 AS id"
