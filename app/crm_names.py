"""The CRM's name as people read it ("HubSpot"), for pages and messages."""

from __future__ import annotations

from app.models import Installation

CRM_NAMES = {"hubspot": "HubSpot", "pipedrive": "Pipedrive"}


def crm_name(installation: Installation) -> str:
    return CRM_NAMES.get(installation.crm.value, installation.crm.value.title())
