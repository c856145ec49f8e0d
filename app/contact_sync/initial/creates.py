"""Records the admin approved creating: Xero contacts from CRM companies (POST /Contacts,
BATCH_SIZE a call, inside the shared quota with invoicing's reserve) and CRM companies from
Xero contacts (HubSpot batch create, 100 a call; Pipedrive v2 POST /organizations, one a
call), each with the fields the mapping sends that way.

Never twice: a row is marked `sending` (committed) before its call, and a retried batch
carries the same Idempotency-Key (Xero replays a quick retry). A row still `sending` when a
job starts (the process died mid-call, or Xero's answer did not line up) is looked up by its
exact name first - Xero's contact names are unique among active contacts, and the match
offered creation only where no contact had the name - and adopted if found, sent again if
not, or failed if several records have the name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from app.connections import xero_client
from app.contact_sync.initial.links import Context, audit, crm_read, fail, make_link, xero_read
from app.contact_sync.reconcile import CONTACT_SYNC_RESERVE, QuotaReserved
from app.contact_sync.rules import Snapshot
from app.contact_sync.sides import STANDARD, crm_fields, shown, xero_patch
from app.contact_sync.values import is_empty
from app.extensions import db
from app.models import ContactMatchRow
from app.wiring import adapter_for
from crm_adapters.base import CrmError, CrmRetryLater
from xero.client import BATCH_SIZE, CONTACT_LIMITS, ContactRecord, ContactSaved
from xero.contacts import name_key
from xero.errors import FixData

_NOBODY = ContactRecord(contact_id="", name="", updated_at=None)
# Xero's text limits the SDK's models enforce before any request (xero.client.CONTACT_LIMITS);
# a mobile is a Phone too (PhoneNumber).
XERO_LIMITS = {**{name: limit for name, (_, limit) in CONTACT_LIMITS.items()},
               "mobile": CONTACT_LIMITS["phone"][1]}
HUBSPOT_BATCH = 100  # companies-v3.json batch/create: 100 inputs a call


def _rows(ctx: Context, choice: str, state: str) -> list[ContactMatchRow]:
    return list(db.session.scalars(select(ContactMatchRow).where(
        ContactMatchRow.run_id == ctx.run.id, ContactMatchRow.choice == choice,
        ContactMatchRow.state == state).order_by(ContactMatchRow.id)))


def _taken_names(ctx: Context, choice: str) -> set[str]:
    """Names this run created (or is creating) with this choice."""
    return {name_key(r.crm_name if choice == "create_xero" else r.xero_name)
            for r in db.session.scalars(select(ContactMatchRow).where(
                ContactMatchRow.run_id == ctx.run.id, ContactMatchRow.choice == choice,
                ContactMatchRow.state.in_(("sending", "done"))))}


# --- to Xero ------------------------------------------------------------------------------

def to_xero(ctx: Context) -> None:
    client = xero_client(ctx.connection)
    taken = _taken_names(ctx, "create_xero")
    queued = _rows(ctx, "create_xero", "queued")
    for start in range(0, len(queued), BATCH_SIZE):
        ready: list[tuple[ContactMatchRow, Any, dict[str, Any]]] = []
        values: dict[int, dict[str, Any]] = {}
        for row in queued[start:start + BATCH_SIZE]:
            patch, sent, why = _xero_contact(ctx, row, values)
            if why is None and name_key(row.crm_name) in taken:
                why = (f"another company named {row.crm_name!r} was created in Xero by this "
                       "match (Xero's contact names are unique)")
            if why is not None:
                fail(ctx, row, why, "contact_match_created")
                continue
            taken.add(name_key(row.crm_name))
            ready.append((row, patch, sent))
        if not ready:
            db.session.commit()
            continue
        if client.limiter.available(ctx.connection.tenant_id) < 1 + CONTACT_SYNC_RESERVE:
            db.session.commit()
            raise QuotaReserved(60.0, "Xero quota kept for invoicing")
        for row, _, sent in ready:
            row.state, row.result = "sending", {**(row.result or {}), "sent": sent}
        db.session.commit()  # evidence before the call: a crash here is looked up, not resent
        key = "paydeck-match-" + hashlib.sha256(
            f"{ctx.connection.tenant_id}:{ctx.run.id}:{[r.id for r, _, _ in ready]}".encode()
        ).hexdigest()[:48]
        try:
            answers = client.create_contacts_whole([p for _, p, _ in ready], key)
        except FixData as exc:
            for row, _, _ in ready:
                fail(ctx, row, "Xero refused the batch: " + exc.describe(),
                     "contact_match_created")
            db.session.commit()
            continue
        for (row, _, sent), answer in zip(ready, answers, strict=True):
            if isinstance(answer, ContactSaved) and answer.errors:
                fail(ctx, row, "; ".join(answer.errors), "contact_match_created")
            elif isinstance(answer, ContactSaved) and answer.contact_id:
                made = (Snapshot(values[row.id], answer.updated_at),
                        crm_read(ctx, ctx.record("crm", row.crm_id)),
                        {"xero": answer.updated_at})
                _created(ctx, row, row.crm_id or "", answer.contact_id, "xero", sent, made)
            # else: the answer did not line up; the row stays `sending` and is looked up
        db.session.commit()
    resume(ctx)


def _xero_contact(ctx: Context, row: ContactMatchRow, kept: dict[int, dict[str, Any]],
                  ) -> tuple[Any, dict[str, Any], str | None]:
    record = ctx.record("crm", row.crm_id)
    if record is None:
        return None, {}, "the company was not read by this match"
    values = {name: value for name, value in crm_read(ctx, record).values.items()
              if name in ctx.rules and ctx.rules[name].to_xero and not is_empty(value)}
    if not str(values.get("name", "")).strip():
        return None, {}, "the company has no name; Xero needs one to create a contact"
    too_long = [f"the {name.replace('_', ' ')} is {len(str(values[name])):,} characters; Xero "
                f"allows {limit}" for name, limit in XERO_LIMITS.items()
                if name in values and len(str(values[name])) > limit]
    if too_long:
        return None, {}, "; ".join(too_long)
    kept[row.id] = values
    try:
        return xero_patch(_NOBODY, values), {k: shown(v) for k, v in values.items()}, None
    except ValueError as exc:
        return None, {}, str(exc)


# --- to the CRM ---------------------------------------------------------------------------

def to_crm(ctx: Context) -> None:
    adapter: Any = adapter_for(ctx.crm)
    size = HUBSPOT_BATCH if ctx.crm == "hubspot" else 1  # Pipedrive v2: no batch create
    taken = _taken_names(ctx, "create_crm")
    queued = _rows(ctx, "create_crm", "queued")
    for start in range(0, len(queued), size):
        ready: list[tuple[ContactMatchRow, dict[str, str]]] = []
        values: dict[int, dict[str, Any]] = {}
        for row in queued[start:start + size]:
            fields, why = _crm_company(ctx, row, values)
            if why is None and name_key(row.xero_name) in taken:
                why = f"another company named {row.xero_name!r} was created by this match"
            if why is not None:
                fail(ctx, row, why, "contact_match_created")
                continue
            taken.add(name_key(row.xero_name))
            ready.append((row, fields))
        if not ready:
            db.session.commit()
            continue
        for row, fields in ready:
            row.state, row.result = "sending", {**(row.result or {}), "sent": fields}
        db.session.commit()
        try:
            ids = adapter.create_companies(ctx.installation, [f for _, f in ready], ctx.extra)
        except CrmRetryLater:
            raise
        except (CrmError, ValueError) as exc:
            for row, _ in ready:
                fail(ctx, row, f"the CRM refused it: {exc}", "contact_match_created")
            db.session.commit()
            continue
        for (row, fields), (company_id, version) in zip(ready, ids, strict=True):
            if company_id:
                made = (xero_read(ctx.record("xero", row.xero_id)),
                        Snapshot(values[row.id], version), {"crm": version})
                _created(ctx, row, company_id, row.xero_id or "", "crm", fields, made)
        db.session.commit()
    resume(ctx)


def _crm_company(ctx: Context, row: ContactMatchRow, kept: dict[int, dict[str, Any]],
                 ) -> tuple[dict[str, str], str | None]:
    record = ctx.record("xero", row.xero_id)
    if record is None:
        return {}, "the Xero contact was not read by this match"
    values = {name: value for name, value in xero_read(record).values.items()
              if name in ctx.rules and ctx.rules[name].to_crm and not is_empty(value)
              and (name in ctx.extra or name in STANDARD)}
    if not str(values.get("name", "")).strip():
        return {}, "the Xero contact has no name"
    kept[row.id] = values
    return crm_fields(values), None


# --- both ---------------------------------------------------------------------------------

def _created(ctx: Context, row: ContactMatchRow, company_id: str, contact_id: str, side: str,
             sent: dict[str, Any], made: tuple[Snapshot, Snapshot, dict[str, Any]] | None = None,
             ) -> None:
    """A record this run created (or found after an interruption, `made` None: then the
    first sync pass settles the link)."""
    if side == "crm":
        row.crm_id = company_id
    else:
        row.xero_id = contact_id
    link = make_link(ctx, row, company_id, contact_id, "created", made)
    if link is not None:
        audit(ctx, row, "contact_match_created", "ok", before={}, after=sent, side=side)


def resume(ctx: Context) -> None:
    """Rows left `sending`: found by exact name -> adopted; none -> queued again; several ->
    failed (a person looks)."""
    for choice, side in (("create_xero", "xero"), ("create_crm", "crm")):
        rows = _rows(ctx, choice, "sending")
        if not rows:
            continue
        names = [r.crm_name if side == "xero" else r.xero_name for r in rows]
        found = _named(ctx, side, names)
        for row, name in zip(rows, names, strict=True):
            hits = found.get(name_key(name), [])
            if len(hits) == 1 and side == "xero":
                _created(ctx, row, row.crm_id or "", hits[0], "xero", row.result.get("sent", {}))
            elif len(hits) == 1:
                _created(ctx, row, hits[0], row.xero_id or "", "crm", row.result.get("sent", {}))
            elif hits:
                fail(ctx, row, f"{len(hits)} records named {name!r} exist now; check them and "
                               "link the right one from the company page",
                     "contact_match_created")
            else:
                row.state = "queued"
        db.session.commit()


def _named(ctx: Context, side: str, names: Sequence[str]) -> dict[str, list[str]]:
    if side == "xero":
        client = xero_client(ctx.connection)
        return {k: [c.contact_id for c in v if c.contact_id]
                for k, v in client.contacts_named(names).items()}
    return adapter_for(ctx.crm).companies_named(ctx.installation, names)  # type: ignore[attr-defined]
