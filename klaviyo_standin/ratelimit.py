"""Fixed-window rate limiting like Klaviyo's (burst, steady and, for reports, daily windows).

Klaviyo documents fixed windows per account; the success headers describe the steady window.
Windows start when the limiter is created and are divided by ``time_scale`` so tests run fast.
Throttled requests do not count against any window.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """``count`` requests per ``seconds`` (unscaled) in the window called ``name``."""

    name: str
    count: int
    seconds: float


REPORT_LIMITS = (Limit("burst", 1, 1), Limit("steady", 2, 60), Limit("daily", 225, 86400))
SEGMENT_LIMITS = (Limit("burst", 75, 1), Limit("steady", 750, 60))


@dataclass(frozen=True)
class Decision:
    """Outcome of one request: allowed (with RateLimit-* headers) or throttled (Retry-After)."""

    allowed: bool
    retry_after: float = 0.0
    limit: int = 0
    remaining: int = 0
    reset: float = 0.0


def format_seconds(seconds: float, time_scale: float) -> str:
    """Integer seconds (rounded up) at real speed; a short decimal when time is scaled."""
    if time_scale == 1:
        return str(max(1, math.ceil(seconds)))
    return f"{max(seconds, 0.001):.3f}"


class RateLimiter:
    """Thread-safe fixed-window counters keyed by (budget, window name)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._origin = clock()
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], tuple[int, int]] = {}

    def reset(self) -> None:
        """Forget all counts and restart the windows now."""
        with self._lock:
            self._counts.clear()
            self._origin = self._clock()

    def acquire(
        self, budget: str, limits: tuple[Limit, ...], time_scale: float, daily_budget: str
    ) -> Decision:
        """Count one request against ``budget`` (the daily window against ``daily_budget``)."""
        with self._lock:
            elapsed = self._clock() - self._origin
            state = []
            for limit in limits:
                key = (daily_budget if limit.name == "daily" else budget, limit.name)
                window = limit.seconds / time_scale
                index = math.floor(elapsed / window)
                seen_index, used = self._counts.get(key, (index, 0))
                used = used if seen_index == index else 0
                state.append((limit, key, index, used, (index + 1) * window - elapsed))
            blocked = [left for limit, _, _, used, left in state if used >= limit.count]
            if blocked:
                return Decision(False, retry_after=max(blocked))
            for _, key, index, used, _ in state:
                self._counts[key] = (index, used + 1)
            steady = next(s for s in state if s[0].name == "steady")
            return Decision(
                True,
                limit=steady[0].count,
                remaining=steady[0].count - steady[3] - 1,
                reset=steady[4],
            )
