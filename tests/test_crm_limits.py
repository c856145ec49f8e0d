"""The CRMs' rate windows as Paydeck keeps them (crm_adapters.limits), on the test Redis."""

from __future__ import annotations

import secrets

import pytest

from crm_adapters.base import CrmRetryLater
from crm_adapters.limits import HUBSPOT, HUBSPOT_SEARCH, CrmLimiter


def test_hubspot_search_keeps_a_slot_of_its_five_a_second_for_network_jitter(app):
    # HubSpot allows five searches a second and counts them on arrival; a request delayed
    # in transit must not make a sixth in HubSpot's second, so Paydeck sends at most four.
    from app.redis_conn import get_redis

    waits: list[float] = []
    with app.app_context():
        limiter = CrmLimiter(get_redis(), HUBSPOT_SEARCH, f"test-{secrets.token_hex(4)}",
                             sleep=waits.append)
        for _ in range(4):
            limiter.take()
        assert waits == []
        with pytest.raises(CrmRetryLater):  # the fifth in the same second finds no room
            limiter.take(max_wait=0)
    assert (HUBSPOT.amount, HUBSPOT.get_expiry()) == (110, 10)  # the account's 110 per 10 s
