"""Retries with exponential backoff, for transient IO errors only.

A `RetryPolicy` would retry every failure, a bad row as readily as a dropped connection; here
only errors that can pass on their own (network, timeouts, a held lock) are retried, and a
data error fails at once with its message.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import dagster as dg

T = TypeVar("T")

MAX_RETRIES = 3
BASE_DELAY_S = 1.0


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    name = type(exc).__name__
    module = type(exc).__module__ or ""
    if name == "KafkaException" and exc.args and hasattr(exc.args[0], "retriable"):
        err = exc.args[0]  # a confluent_kafka.KafkaError
        return bool(err.retriable()) or err.name() in ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_MSG_TIMED_OUT")
    if module.startswith("psycopg") and name in ("OperationalError", "InterfaceError"):
        return True
    text = str(exc).lower()
    if isinstance(exc, OSError):
        # pyarrow/boto surface network trouble as OSError with a message; local disk errors
        # such as "no space left" are not going to pass by waiting a few seconds.
        return any(
            w in text
            for w in ("timed out", "timeout", "connection", "temporarily", "throttl", "slow down", "http status 5")
        )
    return "could not set lock" in text


def backoff_delay(attempt: int, base: float = BASE_DELAY_S) -> float:
    """Exponential with full jitter, so retrying workers do not stampede together."""
    return random.uniform(0, base * (2**attempt))


def with_backoff(
    fn: Callable[[], T],
    what: str,
    log=None,
    attempts: int = MAX_RETRIES + 1,
    base: float = BASE_DELAY_S,
    retry_streams: bool = True,
) -> T:
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if not retry_streams or attempt == attempts - 1 or not is_transient(exc):
                raise
            delay = backoff_delay(attempt, base)
            if log is not None:
                log.warning(f"{what}: transient error ({exc}); retry {attempt + 1} in {delay:.1f}s")
            time.sleep(delay)
    raise AssertionError("unreachable")


@contextmanager
def retry_transient(context: dg.AssetExecutionContext) -> Iterator[None]:
    """Inside an asset: turn a transient error into a Dagster retry with exponential backoff."""
    try:
        yield
    except Exception as exc:
        if not is_transient(exc):
            raise
        n = context.retry_number
        raise dg.RetryRequested(max_retries=MAX_RETRIES, seconds_to_wait=BASE_DELAY_S * 2 ** (n + 1)) from exc
