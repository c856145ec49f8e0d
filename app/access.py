"""Who may do what, decided on the server from what the CRM says (issue #12).

Identity comes only from what the CRM signed: HubSpot's v3-signed card fetch (`userEmail`,
carried on in our view token's `user`) and Pipedrive's panel JWT (`userId`, likewise). The
rest is asked of the CRM through the installation's own token and cached briefly in Redis, so
a page load costs at most a few calls every minute or so. No answer is never a yes (fail
closed), and every refusal is audited.

- Settings page: the installing user, or (Pipedrive) a Pipedrive admin.
- Money and actions (InstallationSettings.money_visibility / action_permission): `everyone`,
  `owners_and_admins` (the record's CRM owner, CRM admins, the installing user) or `admins`.
- Admins: Pipedrive `GET /api/v1/users/{id}` `is_admin` (scope users:read). HubSpot tells a
  user's super-admin flag only through the user provisioning API (`GET /settings/v3/users/{id}`
  `superAdmin`, scope `settings.users.read`; developers.hubspot.com/docs/api-reference/latest/
  account/settings/user-provisioning), a scope Paydeck does not ask for: in HubSpot only the
  installing user counts as an admin.
- Pipedrive record visibility (the panel's record id is not signed): see may_view_record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app import formatting
from app.engine.reference import cached_reference
from app.extensions import db
from app.models import AuditEvent, CrmKind, Installation
from app.redis_conn import get_redis
from app.tokens import ReconnectNeeded, TokenUnavailable
from app.wiring import adapter_for
from domain.crm import RecordAccess
from crm_adapters.base import CrmError
from xero.timezones import iana_zone

log = logging.getLogger(__name__)

ADMIN_CACHE_SECONDS = 300
RECORD_CACHE_SECONDS = 60  # owner / visibility / followers of one record: a reassignment shows within a minute
_ADMIN_KEY = "paydeck:crm-admin:{}:{}"
_USER_KEY = "paydeck:crm-user:{}:{}"
_OWNERS_KEY = "paydeck:crm-owner-ids:{}:{}"
_RECORD_KEY = "paydeck:crm-record:{}:{}:{}"
_FOLLOWERS_KEY = "paydeck:crm-followers:{}:{}"
_LOCALE_KEY = "paydeck:crm-locale:{}:{}"
LOCALE_CACHE_SECONDS = 30 * 24 * 3600  # a HubSpot user's locale, refreshed on every card load

EVERYONE, OWNERS_AND_ADMINS, ADMINS = "everyone", "owners_and_admins", "admins"
LEVELS = {EVERYONE: "Everyone who can see the record",
          OWNERS_AND_ADMINS: "The record's owner and admins",
          ADMINS: "Admins only"}
DEFAULT_MONEY_VISIBILITY = EVERYONE
DEFAULT_ACTION_PERMISSION = OWNERS_AND_ADMINS
AMOUNTS_HIDDEN = "Amounts hidden by your admin's settings"
# What "the CRM did not answer" looks like: a refused/failed call, or no usable token.
NO_ANSWER = (CrmError, ReconnectNeeded, TokenUnavailable)

# Pipedrive `visible_to` codes that mean "the entire company" (client-nodejs
# docs/AddOrUpdateRoleSettingRequest.md): 3 on Essential/Advanced plans, 7 on
# Professional/Enterprise. On Professional/Enterprise 3 means "owner's visibility group" and 5
# "group and sub-groups"; group membership is not readable with the installer's token, so
# Paydeck treats 3 as company-wide (its meaning on the plans without visibility groups) and 5
# as private. Unverified: whether a company on Professional uses 3 for most deals; such a
# company should choose "owners and admins" for money.
SHARED_VISIBILITY = frozenset({3, 7})


@dataclass(frozen=True)
class Viewer:
    """The person looking, as the CRM signed and says."""

    installation: Installation
    user_id: str  # Pipedrive's userId; "" in HubSpot (its card signs the email)
    email: str
    is_admin: bool  # a CRM admin (Pipedrive is_admin; HubSpot: see the module docstring)
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
    data = _pipedrive_user(installation, user)
    email = str(data["email"])
    return Viewer(installation, user, email, bool(data["admin"]),
                  _same_email(email, installation.installed_by),
                  str(data.get("locale") or ""), str(data.get("tz") or ""))


# --- the viewer's locale and timezone (how pages format money and times) ----------------------

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
    known_tz = tz if tz and _known_zone(tz) else ""
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
    tz = viewer.timezone if viewer.timezone and _known_zone(viewer.timezone) else org_zone
    return locale, tz or None


def organisation_locale(installation: Installation) -> tuple[str, str]:
    """(Xero CountryCode, IANA zone of Organisation.Timezone) as Paydeck last read them; ("", "")
    when it holds no copy."""
    ref = cached_reference(installation.id)
    if ref is None:
        return "", ""
    zone = iana_zone(ref.timezone) if ref.timezone else None
    return ref.country_code, zone.key if zone is not None else ""


def _known_zone(name: str) -> bool:
    return len(name) <= 64 and formatting.zone(name).key == name


def level(installation: Installation, name: str) -> str:
    """money_visibility or action_permission, defaulting as the model does."""
    default = DEFAULT_MONEY_VISIBILITY if name == "money_visibility" else DEFAULT_ACTION_PERMISSION
    value = getattr(installation.settings, name, None) if installation.settings else None
    return value if value in LEVELS else default


def may_see_money(viewer: Viewer, kind: str, record_id: str) -> bool:
    """May this viewer see invoice amounts of this deal / company?"""
    return _allowed(viewer, level(viewer.installation, "money_visibility"), kind, record_id)


def may_see_all_money(viewer: Viewer) -> bool:
    """May this viewer see every record's amounts (the review queue spans every deal)?"""
    return level(viewer.installation, "money_visibility") == EVERYONE or viewer.privileged


def may_act(viewer: Viewer, kind: str, record_id: str) -> bool:
    """May this viewer push, re-push, retry, dismiss, link or import for this record?"""
    return _allowed(viewer, level(viewer.installation, "action_permission"), kind, record_id)


def refuse_action(viewer: Viewer, kind: str, record_id: str, action: str) -> str:
    """Audit a refused action; the sentence to show."""
    record = "deal" if kind == "deal" else "company"
    who = ("only admins" if level(viewer.installation, "action_permission") == ADMINS
           else f"only the {record}'s owner and admins")
    audit_refusal(viewer, kind, record_id, action, f"{who} may {action}")
    return f"Your admin's settings allow {who} to {action} for this {record}."


def may_view_record(viewer: Viewer, kind: str, record_id: str) -> tuple[bool, str]:
    """Pipedrive: may this user open this deal / organization at all? The panel's record id is
    not signed, so a rep could name any id; Pipedrive's API cannot be asked "may user X see
    this" with the installer's token, so the rule is Paydeck's, conservative and documented:
    allowed if the user is an admin or the installing user, the record's owner, a follower of
    the deal, or the record is shared company-wide (SHARED_VISIBILITY). Organization followers
    are not consulted (a follower of a private organization is refused)."""
    if viewer.privileged:
        return True, ""
    try:
        access = _record(viewer.installation, kind, record_id)
        if access.owner_id is not None and access.owner_id == viewer.user_id:
            return True, ""
        if access.visible_to in SHARED_VISIBILITY:
            return True, ""
        if kind == "deal" and viewer.user_id in _followers(viewer.installation, record_id):
            return True, ""
    except NO_ANSWER as exc:  # fail closed: no answer is not a yes
        reason = f"Pipedrive could not confirm you may see this record ({exc})"
    else:
        reason = f"this {'deal' if kind == 'deal' else 'organization'} is private to its owner and followers"
    audit_refusal(viewer, kind, record_id, "view", reason)
    return False, reason


def audit_refusal(viewer: Viewer, kind: str, record_id: str, action: str, reason: str) -> None:
    installation = viewer.installation
    db.session.add(AuditEvent(installation_id=installation.id,
                              deal_id=record_id if kind == "deal" else None,
                              action="access_refused", outcome="refused",
                              trigger=f"card:{viewer.who}",
                              detail={"user": viewer.who, "kind": kind, "record_id": record_id,
                                      "action": action, "reason": reason}))
    db.session.commit()
    log.warning("installation %s: %s of %s %s refused to %s: %s", installation.id, action, kind,
                record_id, viewer.who, reason)


def may_administer_pipedrive(installation: Installation, user_id: str) -> tuple[bool, str]:
    """(allowed, why not): the installing user or a Pipedrive admin of that company."""
    key = _ADMIN_KEY.format(installation.id, user_id)
    cached = get_redis().get(key)
    if cached is not None:
        allowed = cached == b"1"
        reason = "" if allowed else "only the installing user and Pipedrive admins may change Paydeck's settings"
    else:
        try:
            is_admin, email = adapter_for("pipedrive").user_is_admin(installation, user_id)
        except CrmError as exc:  # fail closed: no answer is not a yes
            return _refused(installation, user_id, f"Pipedrive could not confirm who you are ({exc})")
        allowed = is_admin or (bool(email) and email.lower() == installation.installed_by.lower())
        get_redis().set(key, b"1" if allowed else b"0", ex=ADMIN_CACHE_SECONDS)
        reason = "" if allowed else "only the installing user and Pipedrive admins may change Paydeck's settings"
    if not allowed:
        return _refused(installation, user_id, reason)
    return True, ""


# --- what the CRM says, cached ---------------------------------------------------------------

def _allowed(viewer: Viewer, wanted: str, kind: str, record_id: str) -> bool:
    if wanted == EVERYONE or viewer.privileged:
        return True
    if wanted == ADMINS or not record_id:
        # No record (a reconnect or connection item of the whole installation): only admins.
        return False
    try:
        return _is_owner(viewer, kind, record_id)
    except NO_ANSWER as exc:  # fail closed
        log.warning("installation %s: could not read the owner of %s %s: %s",
                    viewer.installation.id, kind, record_id, exc)
        return False


def _is_owner(viewer: Viewer, kind: str, record_id: str) -> bool:
    owner = _record(viewer.installation, kind, record_id).owner_id
    if owner is None:
        return False
    if viewer.installation.crm == CrmKind.PIPEDRIVE:
        return bool(viewer.user_id) and owner == viewer.user_id
    return bool(viewer.email) and owner in _hubspot_owner_ids(viewer.installation, viewer.email)


def _pipedrive_user(installation: Installation, user_id: str) -> dict[str, Any]:
    """{admin, email, locale, tz} of a Pipedrive user (GET /v1/users/{id}), cached; not an
    admin and no email if Pipedrive cannot say."""
    key = _USER_KEY.format(installation.id, user_id)
    cached = get_redis().get(key)
    if cached is not None:
        data: dict[str, Any] = json.loads(cached)
        return data
    try:
        profile = adapter_for("pipedrive").user_profile(installation, user_id)
    except NO_ANSWER as exc:  # fail closed, and not cached: the next load asks again
        log.warning("installation %s: Pipedrive user %s unknown: %s", installation.id, user_id, exc)
        return {"admin": False, "email": ""}
    data = {"admin": profile.is_admin, "email": profile.email, "locale": profile.locale,
            "tz": profile.timezone}
    get_redis().set(key, json.dumps(data), ex=ADMIN_CACHE_SECONDS)
    return data


def _hubspot_owner_ids(installation: Installation, email: str) -> set[str]:
    key = _OWNERS_KEY.format(installation.id, email.casefold())
    return set(_remember(key, ADMIN_CACHE_SECONDS, lambda: sorted(
        adapter_for("hubspot").owner_ids_for_email(installation, email))))


def _record(installation: Installation, kind: str, record_id: str) -> RecordAccess:
    def load() -> dict[str, Any]:
        access = adapter_for(installation.crm.value).record_access(installation, kind, record_id)
        return {"owner": access.owner_id, "visible_to": access.visible_to}

    data = _remember(_RECORD_KEY.format(installation.id, kind, record_id), RECORD_CACHE_SECONDS, load)
    return RecordAccess(owner_id=data["owner"], visible_to=data["visible_to"])


def _followers(installation: Installation, deal_id: str) -> set[str]:
    key = _FOLLOWERS_KEY.format(installation.id, deal_id)
    return set(_remember(key, RECORD_CACHE_SECONDS, lambda: sorted(
        adapter_for("pipedrive").deal_followers(installation, deal_id))))


def _remember(key: str, seconds: int, load: Callable[[], Any]) -> Any:
    """What the CRM said, cached as JSON for `seconds`; a CRM error is raised, not cached."""
    cached = get_redis().get(key)
    if cached is not None:
        return json.loads(cached)
    value = load()
    get_redis().set(key, json.dumps(value), ex=seconds)
    return value


def _same_email(a: str, b: str | None) -> bool:
    return bool(a) and a.casefold() == (b or "").casefold()


def _refused(installation: Installation, user_id: str, reason: str) -> tuple[bool, str]:
    db.session.add(AuditEvent(installation_id=installation.id, action="settings_refused",
                              outcome="refused", detail={"user_id": user_id, "reason": reason}))
    db.session.commit()
    log.warning("installation %s: settings refused to Pipedrive user %s: %s",
                installation.id, user_id, reason)
    return False, reason
