"""The person looking, as the CRM signed and says (identity only from what the CRM signed:
HubSpot's card fetch `userEmail`, Pipedrive's panel JWT `userId`), and the locale and zone
their pages are formatted in."""

from __future__ import annotations

import json
from dataclasses import dataclass

from app import formatting
from app.access.crm_answers import pipedrive_user
from app.engine.reference import cached_reference
from app.models import CrmKind, Installation
from app.redis_conn import get_redis
from xero.timezones import iana_zone

_LOCALE_KEY = "paydeck:crm-locale:{}:{}"
LOCALE_CACHE_SECONDS = 30 * 24 * 3600  # a HubSpot user's locale, refreshed on every card load


@dataclass(frozen=True)
class Viewer:
    """The person looking, as the CRM signed and says."""

    installation: Installation
    user_id: str  # Pipedrive's userId; "" in HubSpot (its card signs the email)
    email: str
    is_admin: bool  # a CRM admin (Pipedrive is_admin; HubSpot: see app.access's docstring)
    is_installer: bool
    locale: str = ""  # the CRM user's own ("en_US"), "" if the CRM did not say
    timezone: str = ""  # the CRM user's IANA zone, "" if the CRM did not say

    @property
    def privileged(self) -> bool:
        return self.is_admin or self.is_installer

    @property
    def who(self) -> str:
        return self.user_id or self.email or "unknown"


def viewer_for(installation: Installation, user: str) -> Viewer:
    """The viewer a view token's `user` names (HubSpot: the signed userEmail; Pipedrive: the
    JWT's userId). A CRM that cannot say who the user is yields a viewer with no privileges."""
    if installation.crm == CrmKind.HUBSPOT:
        installer = _same_email(user, installation.installed_by)
        locale, tz = _hubspot_locale(installation, user)
        return Viewer(installation, "", user, installer, installer, locale, tz)
    data = pipedrive_user(installation, user)
    email = str(data["email"])
    return Viewer(installation, user, email, bool(data["admin"]),
                  _same_email(email, installation.installed_by),
                  str(data.get("locale") or ""), str(data.get("tz") or ""))


def remember_hubspot_locale(installation: Installation, email: str, locale: str | None,
                            tz: str | None) -> None:
    """What HubSpot's card said of its user (`context.user.locale`, `context.portal.timezone`,
    passed on its signed fetch): kept for the pages that user opens from the card. Values that
    name no known locale or zone are not kept."""
    if not email:
        return
    known_locale = formatting.locale_for(locale) if locale else ""
    if known_locale == formatting.DEFAULT_LOCALE and (locale or "").strip().lower() != "en":
        known_locale = ""  # locale_for fell back: HubSpot sent nothing usable
    known_tz = tz if tz and known_zone(tz) else ""
    if not (known_locale or known_tz):
        return
    get_redis().set(_LOCALE_KEY.format(installation.id, email.casefold()),
                    json.dumps({"locale": known_locale, "tz": known_tz}), ex=LOCALE_CACHE_SECONDS)


def _hubspot_locale(installation: Installation, email: str) -> tuple[str, str]:
    if not email:
        return "", ""
    cached = get_redis().get(_LOCALE_KEY.format(installation.id, email.casefold()))
    if cached is None:
        return "", ""
    data = json.loads(cached)
    return str(data.get("locale") or ""), str(data.get("tz") or "")


def page_locale(viewer: Viewer) -> tuple[str, str | None]:
    """(locale, IANA zone) to format this viewer's pages in: the CRM user's where the CRM
    says, else the organisation's (Xero's CountryCode and Timezone, from the reference data
    Paydeck keeps: no Xero call), else English and UTC."""
    country, org_zone = organisation_locale(viewer.installation)
    locale = formatting.locale_for(viewer.locale or None, country or None)
    tz = viewer.timezone if viewer.timezone and known_zone(viewer.timezone) else org_zone
    return locale, tz or None


def organisation_locale(installation: Installation) -> tuple[str, str]:
    """(Xero CountryCode, IANA zone of Organisation.Timezone) as Paydeck last read them; ("", "")
    when it holds no copy."""
    ref = cached_reference(installation.id)
    if ref is None:
        return "", ""
    zone = iana_zone(ref.timezone) if ref.timezone else None
    return ref.country_code, zone.key if zone is not None else ""


def known_zone(name: str) -> bool:
    return len(name) <= 64 and formatting.zone(name).key == name


def _same_email(a: str, b: str | None) -> bool:
    return bool(a) and a.casefold() == (b or "").casefold()
