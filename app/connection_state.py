"""What the pages and the card say about an installation's two connections (CRM and Xero).

One place decides, so the settings page, the deal page, the review queue and the card JSON
(`connection`, a contract the React card reads) always agree.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from app.models import ConnectionStatus, Installation, InstallationStatus, XeroConnection
from app.tokens import is_failing

CrmState = Literal["ok", "failing", "reconnect_needed"]
XeroState = Literal["connected", "not_connected", "failing", "reconnect_needed"]


class PartyState(TypedDict):
    state: str
    message: str | None


class ConnectionState(TypedDict):
    crm: PartyState
    xero: PartyState


def connection_state(installation: Installation) -> ConnectionState:
    """The card's `connection` block: {"crm": {state, message}, "xero": {state, message}}."""
    return {"crm": crm_state(installation), "xero": xero_state(installation.xero_connection)}


def crm_state(installation: Installation) -> PartyState:
    if installation.status == InstallationStatus.RECONNECT_NEEDED:
        return {"state": "reconnect_needed",
                "message": "CRM connection lost: install Paydeck again to reconnect."}
    if is_failing(installation):
        return {"state": "failing",
                "message": f"CRM connection failing: {installation.token_failure_detail}"}
    return {"state": "ok", "message": None}


def xero_state(connection: XeroConnection | None) -> PartyState:
    if connection is None or connection.status in (ConnectionStatus.DISCONNECTED,
                                                   ConnectionStatus.PENDING_TENANT):
        return {"state": "not_connected", "message": None}
    if connection.status == ConnectionStatus.RECONNECT_NEEDED:
        detail = connection.status_detail or "the grant no longer works"
        return {"state": "reconnect_needed",
                "message": f"Xero connection lost: {detail}. Connect to Xero again."}
    if is_failing(connection):
        return {"state": "failing",
                "message": f"Xero connection failing: {connection.token_failure_detail}"}
    return {"state": "connected", "message": None}


def connection_notices(installation: Installation) -> list[str]:
    """The messages the HTML pages show at the top (failing or lost connections only)."""
    state = connection_state(installation)
    return [party["message"] for party in (state["crm"], state["xero"])
            if party["state"] in ("failing", "reconnect_needed") and party["message"]]
