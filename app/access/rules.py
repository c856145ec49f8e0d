"""Who may see money, act, open a Pipedrive record and change the settings (issue #12): the
admin's levels (InstallationSettings.money_visibility / action_permission), decided from
what the CRM says; no answer is never a yes (fail closed), and every refusal is audited."""

from __future__ import annotations

import logging

from app.access.crm_answers import (
    ADMIN_CACHE_SECONDS,
    NO_ANSWER,
    deal_followers,
    hubspot_owner_ids,
    record_access,
)
from app.access.viewer import Viewer
from app.extensions import db
from app.models import AuditEvent, CrmKind, Installation
from app.redis_conn import get_redis
from app.wiring import adapter_for
from crm_adapters.base import CrmError

log = logging.getLogger(__name__)

_ADMIN_KEY = "paydeck:crm-admin:{}:{}"

EVERYONE, OWNERS_AND_ADMINS, ADMINS = "everyone", "owners_and_admins", "admins"
LEVELS = {EVERYONE: "Everyone who can see the record",
          OWNERS_AND_ADMINS: "The record's owner and admins",
          ADMINS: "Admins only"}
DEFAULT_MONEY_VISIBILITY = EVERYONE
DEFAULT_ACTION_PERMISSION = OWNERS_AND_ADMINS
AMOUNTS_HIDDEN = "Amounts hidden by your admin's settings"

# Pipedrive `visible_to` codes that mean "the entire company" (client-nodejs
# docs/AddOrUpdateRoleSettingRequest.md): 3 on Essential/Advanced plans, 7 on
# Professional/Enterprise. On Professional/Enterprise 3 means "owner's visibility group" and 5
# "group and sub-groups"; group membership is not readable with the installer's token, so
# Paydeck treats 3 as company-wide (its meaning on the plans without visibility groups) and 5
# as private. Unverified: whether a company on Professional uses 3 for most deals; such a
# company should choose "owners and admins" for money.
SHARED_VISIBILITY = frozenset({3, 7})


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
        access = record_access(viewer.installation, kind, record_id)
        if access.owner_id is not None and access.owner_id == viewer.user_id:
            return True, ""
        if access.visible_to in SHARED_VISIBILITY:
            return True, ""
        if kind == "deal" and viewer.user_id in deal_followers(viewer.installation, record_id):
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
    owner = record_access(viewer.installation, kind, record_id).owner_id
    if owner is None:
        return False
    if viewer.installation.crm == CrmKind.PIPEDRIVE:
        return bool(viewer.user_id) and owner == viewer.user_id
    return bool(viewer.email) and owner in hubspot_owner_ids(viewer.installation, viewer.email)


def _refused(installation: Installation, user_id: str, reason: str) -> tuple[bool, str]:
    db.session.add(AuditEvent(installation_id=installation.id, action="settings_refused",
                              outcome="refused", detail={"user_id": user_id, "reason": reason}))
    db.session.commit()
    log.warning("installation %s: settings refused to Pipedrive user %s: %s",
                installation.id, user_id, reason)
    return False, reason
