"""The installation-wide banner every card and page shows: open `reconnect_needed` review
items that name no deal. Database reads only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.connection_state import connection_state
from app.extensions import db
from app.models import Installation, ReviewItem, ReviewReason, ReviewStatus

# The card lists this many open review items (newest first; `open_review_items` counts them
# all) and at most as many banners.
CARD_REVIEW_ITEMS = 5


def installation_alerts(installation: Installation) -> list[dict[str, Any]]:
    """Open `reconnect_needed` review items that name no deal: they hold up every deal of the
    installation, so every card and page shows them as a banner until a person closes them in
    the review queue. `fixed`: the connection works again now (the item is still open)."""
    items = db.session.scalars(select(ReviewItem).where(
        ReviewItem.installation_id == installation.id, ReviewItem.deal_id.is_(None),
        ReviewItem.status == ReviewStatus.OPEN, ReviewItem.reason == ReviewReason.RECONNECT_NEEDED)
        .order_by(ReviewItem.created_at.desc(), ReviewItem.id.desc()).limit(CARD_REVIEW_ITEMS)).all()
    if not items:
        return []
    state = connection_state(installation)
    healthy = state["crm"]["state"] == "ok" and state["xero"]["state"] == "connected"
    return [{"id": i.id, "reason": i.reason.value, "title": _alert_title(installation, i.detail, healthy),
             "detail": i.detail.split(": ", 1)[1] if i.detail.startswith(_PARTIES) else i.detail,
             "fixed": healthy, "created_at": i.created_at.isoformat()} for i in items]


_PARTIES = ("xero_reconnect_needed: ", "crm_reconnect_needed: ")


def _alert_title(installation: Installation, detail: str, fixed: bool) -> str:
    """The banner's headline; in the past tense once both connections work again."""
    crm = {"hubspot": "HubSpot", "pipedrive": "Pipedrive"}.get(installation.crm.value, "the CRM")
    if detail.startswith("crm_reconnect_needed: "):
        return (f"Paydeck lost access to {crm} and was reconnected since" if fixed
                else f"Paydeck lost access to {crm}: an admin installs Paydeck again")
    if detail.startswith("xero_reconnect_needed: "):
        return ("Xero needed reconnecting and was reconnected since" if fixed
                else "Xero needs reconnecting: an admin reconnects it in Paydeck's settings")
    return ("A connection needed reconnecting and works again now" if fixed
            else "A connection needs reconnecting: invoices are waiting")
