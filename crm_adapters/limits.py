"""The CRMs' own rate limits, shared by every process through Redis (the `limits` library).

HubSpot: 110 requests per 10 s per installed account (marketplace apps). Pipedrive: a token
budget per rolling 2 s that depends on the plan (80 to 480; we assume the smallest), with
calls costing different numbers of tokens (platform-facts).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from limits import RateLimitItem, parse
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from crm_adapters.base import CrmRetryLater

HUBSPOT = parse("110/10 seconds")
# CRM search allows 5 requests a second per account (platform-facts "HubSpot limits"). Paydeck
# takes a slot when it sends and HubSpot counts a request when it arrives, so a request
# delayed on its way can land in the same HubSpot second as five sent after it: a 429 that
# pauses the contact safety net for a whole interval (seen with the fake under load). Four a
# second leaves the fifth slot for that jitter.
HUBSPOT_SEARCH = parse("4/1 second")
PIPEDRIVE_BURST = parse("80/2 seconds")


class CrmLimiter:
    """Wait briefly for room in the window, or raise CrmRetryLater for the job to come back."""

    def __init__(self, client: redis.Redis, item: RateLimitItem, key: str, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        storage = RedisStorage("redis://", connection_pool=client.connection_pool,
                               key_prefix="paydeck:crm-limit")
        self.limiter = MovingWindowRateLimiter(storage)
        self.item, self.key, self.sleep = item, key, sleep

    def take(self, cost: int = 1, max_wait: float = 5.0) -> None:
        waited = 0.0
        while not self.limiter.hit(self.item, self.key, cost=cost):
            reset = self.limiter.get_window_stats(self.item, self.key).reset_time
            pause = max(0.05, reset - time.time())
            if waited + pause > max_wait:
                raise CrmRetryLater(f"{self.key}: CRM rate limit reached", pause)
            self.sleep(pause)
            waited += pause
