"""A person's push from the card: decided before anything is enqueued, so the card says
exactly what will happen, or why nothing will and what fixes it.

- Which invoice a manual push makes: the rule of the stage the deal is in now (draft,
  approve, approve and email), turned into a draft under draft-first
  (`rules.xero_status`). A deal at a stage with **no rule** gets a **draft**: a person
  pushing from a stage the admin gave no rule has had no approval decided for them, and a
  draft is the reversible choice (finance approves it in Xero, or the deal reaches a stage
  whose rule approves it).
- What a push can do to the invoice there is: none yet -> create; Paydeck's draft (or one
  awaiting approval) -> update it; approved -> nothing (Paydeck never changes approved
  invoices); paid -> nothing, and no push is offered; voided or deleted -> no push, but
  a re-invoice: a new invoice linked to the deal, the voided one kept as its history.
- Connections: CRM lost or failing, Xero not connected, still choosing its organisation,
  or needing a reconnect -> nothing is enqueued, the fix is named. Xero failing only for now
  -> the request waits and goes through once Xero answers (app/tokens.py), and it says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from app.connection_state import crm_state, xero_state
from app.engine import clock
from app.engine.intake import request_invoice
from app.engine.keys import key, reference
from app.engine.rules import action_for_stage, xero_status
from app.extensions import db
from app.models import ConnectionStatus, Installation, InstallationSettings, InvoiceLink
from app.models import InvoiceLinkState, StageAction
from app.writeback import TRIGGER

CREATE, UPDATE, REINVOICE, NOTHING = "create", "update", "reinvoice", "nothing"
# What fixes a push that cannot happen (the page turns each into a link or a sentence).
FIX_CONNECT_XERO, FIX_RECONNECT_XERO, FIX_REINSTALL = "connect_xero", "reconnect_xero", "reinstall"
FIX_WAIT, FIX_REINVOICE, FIX_IN_XERO = "wait", "reinvoice", "in_xero"
_CRM = {"hubspot": "HubSpot", "pipedrive": "Pipedrive"}
VOIDED = ("VOIDED", "DELETED")


@dataclass(frozen=True)
class PushPlan:
    """What the card's push (or re-invoice) button would do now."""

    kind: str  # CREATE | UPDATE | REINVOICE | NOTHING
    says: str  # the confirmation of what will happen, or why nothing will
    action: StageAction = StageAction.NONE
    status: str = ""  # the Xero status the invoice ends up with: DRAFT | SUBMITTED | AUTHORISED
    why: str = ""  # why that status (the stage's rule, draft-first)
    fix: str = ""  # FIX_*: what would make a push possible
    note: str = ""  # said beside a push that will happen (e.g. Xero answering slowly)

    @property
    def allowed(self) -> bool:
        return self.kind != NOTHING

    @property
    def button(self) -> str:
        return {CREATE: "Push to Xero", UPDATE: "Re-push to Xero", REINVOICE: "Re-invoice"}.get(self.kind, "")

    def done(self, invoice_number: str | None = None) -> str:
        """The sentence after the button was pressed and the request enqueued."""
        words = _words(self.status, self.action)
        if self.kind == REINVOICE:
            what = f"Re-invoicing: {words} replaces voided invoice {invoice_number}"
        elif self.kind == UPDATE:
            what = f"Updating invoice {invoice_number} in Xero ({words})"
        else:
            what = f"Creating {words} in Xero"
        return f"{what}: {self.why}. The card updates in a few seconds.{' ' + self.note if self.note else ''}"


def manual_action(installation_id: int, stage_id: str) -> tuple[StageAction, str]:
    """The action of a person's push at the deal's current stage, and why (a draft when the
    stage has no rule: see the module's docstring)."""
    rule = action_for_stage(installation_id, stage_id) if stage_id else StageAction.NONE
    if rule == StageAction.NONE:
        return StageAction.DRAFT, ("the deal's stage has no invoice rule, and a push from such a "
                                  "stage makes a draft")
    words = {StageAction.DRAFT: "make a draft", StageAction.AUTHORISE: "approve",
             StageAction.AUTHORISE_AND_EMAIL: "approve and email"}[rule]
    return rule, f"the rule for the deal's stage is \u201c{words}\u201d"


def plan_push(installation: Installation, link: InvoiceLink | None, stage_id: str | None) -> PushPlan:
    """Decide what a push would do, before anything is enqueued. `stage_id`: the deal's stage
    as the CRM says it now; None when the CRM could not be read."""
    blocked = _connections_block(installation)
    if blocked is not None:
        return blocked
    status = (link.status or "") if link is not None and link.xero_invoice_id else ""
    number = link.invoice_number if link is not None else None
    if status == "PAID":
        return PushPlan(NOTHING, f"Invoice {number} is paid in Xero: there is nothing to push.")
    if status == "AUTHORISED":
        return PushPlan(NOTHING, f"Invoice {number} is approved in Xero: Paydeck does not change "
                                 "approved invoices. Change it in Xero, or void it there and "
                                 "re-invoice here.", fix=FIX_IN_XERO)
    if stage_id is None:
        crm = _CRM.get(installation.crm.value, installation.crm.value)
        return PushPlan(NOTHING, f"Paydeck could not read this deal from {crm} right now, so it "
                                 "cannot tell which invoice the deal's stage asks for. Nothing "
                                 "was sent: try again in a minute.", fix=FIX_WAIT)
    action, why = manual_action(installation.id, stage_id)
    settings = installation.settings or InstallationSettings(installation_id=installation.id)
    wanted = xero_status(settings, action)
    if settings.draft_first and action != StageAction.DRAFT:
        why += "; draft-first is on in your admin's settings, so it is a draft"
    note = _xero_note(installation)
    if status in VOIDED:
        return PushPlan(REINVOICE, f"Create a new invoice for this deal? Invoice {number} was "
                                   f"{status.lower()} in Xero and stays in the deal's history. "
                                   f"The new one is {_words(wanted, action)}. {_cap(why)}.",
                        action, wanted, why, note=note)
    if status in ("DRAFT", "SUBMITTED"):
        if status == "SUBMITTED" and wanted == "DRAFT":
            wanted = "SUBMITTED"  # Xero never goes back to a draft
        return PushPlan(UPDATE, f"Re-send this deal to invoice {number}? Paydeck updates it with "
                                f"the deal as it is now, as {_words(wanted, action)} (if someone "
                                "edited it in Xero, you are asked which version wins). "
                                f"{_cap(why)}.", action, wanted, why, note=note)
    return PushPlan(CREATE, f"Create {_words(wanted, action)} in Xero? {_cap(why)}.", action,
                    wanted, why, note=note)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _words(status: str, action: StageAction) -> str:
    if status in ("DRAFT", "SUBMITTED"):
        return "a draft invoice" if status == "DRAFT" else "an invoice awaiting approval"
    return ("an approved invoice, emailed to the customer"
            if action == StageAction.AUTHORISE_AND_EMAIL else "an approved invoice")


def _connections_block(installation: Installation) -> PushPlan | None:
    """Why no push can work now, from the two connections (None: they allow one)."""
    crm = crm_state(installation)
    if crm["state"] == "reconnect_needed":
        return PushPlan(NOTHING, f"{crm['message']} Nothing was sent.", fix=FIX_REINSTALL)
    if crm["state"] == "failing":
        return PushPlan(NOTHING, f"{crm['message']}. Nothing was sent: Paydeck cannot read the deal "
                                 "until the connection works again (the card shows when).",
                        fix=FIX_WAIT)
    connection = installation.xero_connection
    if connection is not None and connection.status == ConnectionStatus.PENDING_TENANT:
        return PushPlan(NOTHING, "Xero is connected to several organisations and none is chosen "
                                 "yet: an admin picks one in Paydeck's settings. Nothing was sent.",
                        fix=FIX_CONNECT_XERO)
    xero = xero_state(connection)
    if xero["state"] == "not_connected":
        return PushPlan(NOTHING, "Xero is not connected: an admin connects it in Paydeck's "
                                 "settings. Nothing was sent.", fix=FIX_CONNECT_XERO)
    if xero["state"] == "reconnect_needed":
        return PushPlan(NOTHING, f"{xero['message']} Nothing was sent.", fix=FIX_RECONNECT_XERO)
    return None


def _xero_note(installation: Installation) -> str:
    xero = xero_state(installation.xero_connection)
    if xero["state"] == "failing":
        return (f"{xero['message']}: the request waits and goes through as soon as Xero "
                "answers again.")
    return ""


def push(installation: Installation, deal_id: str, plan: PushPlan, who: str) -> None:
    """Carry out a plan that allows a push (the caller decided it just now)."""
    assert plan.allowed
    if plan.kind == REINVOICE:
        replace_voided(installation, deal_id)
    request_invoice(installation.id, deal_id, plan.action, f"card:{who}")


def replace_voided(installation: Installation, deal_id: str) -> InvoiceLink:
    """Start the deal's next invoice: the voided link becomes history (its own trigger,
    `voided:<id>`), and a PENDING link with a Reference and Idempotency-Key of its own (so
    recovery by Reference never finds the voided one) takes the deal's place. The run then
    builds and sends it as any new invoice. Committed here."""
    old = db.session.scalar(select(InvoiceLink).where(
        InvoiceLink.installation_id == installation.id, InvoiceLink.deal_id == deal_id,
        InvoiceLink.trigger == TRIGGER).with_for_update())
    if old is None or (old.status or "") not in VOIDED:
        raise ValueError("only a voided invoice is re-invoiced")
    earlier = db.session.scalar(select(func.count()).select_from(InvoiceLink).where(
        InvoiceLink.installation_id == installation.id, InvoiceLink.deal_id == deal_id)) or 0
    number = earlier + 1  # this deal's second, third... invoice
    old.trigger, old.replaced_at = f"voided:{old.id}", clock.now()
    db.session.flush()  # the unique (installation, deal, trigger) is free before the insert
    new = InvoiceLink(installation_id=installation.id, deal_id=deal_id, trigger=TRIGGER,
                      state=InvoiceLinkState.PENDING, replaces_id=old.id,
                      reference=f"{reference(installation, deal_id)} #{number}",
                      idempotency_key=key("invoice", [str(installation.id), deal_id, TRIGGER,
                                                      str(number)]))
    db.session.add(new)
    db.session.commit()
    return new


def invoice_history(installation_id: int, deal_id: str) -> list[InvoiceLink]:
    """The deal's earlier (replaced) invoices, newest first."""
    return list(db.session.scalars(select(InvoiceLink).where(
        InvoiceLink.installation_id == installation_id, InvoiceLink.deal_id == deal_id,
        InvoiceLink.trigger != TRIGGER).order_by(InvoiceLink.created_at.desc(),
                                                 InvoiceLink.id.desc())).all())
