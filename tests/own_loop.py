"""Run a test's coroutine on an event loop of its own, in a thread of its own.

The browser tests keep Playwright's sync API open for the whole pytest worker, and that
API leaves an event loop marked running on the worker's main thread: `asyncio.run` there
refuses ("cannot be called from a running event loop") in every later test the worker
runs. A fresh thread has no running loop, whatever ran before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_on_own_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coroutine)` on a thread of its own; its result or its exception."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="own-loop") as pool:
        return pool.submit(asyncio.run, coroutine).result()
