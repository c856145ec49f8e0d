"""The company page inside the CRM (HubSpot modal, Pipedrive panel): the company's Xero
contact, or suggested contacts and a search to link or import one; what it owes; recent
invoices. Page and action tokens as on the deal page (app.ui_auth)."""

from __future__ import annotations

import re

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from app.access.rules import AMOUNTS_HIDDEN, may_act
from app.access.viewer import viewer_for
from app.card_data.company import company_invoices, company_sync
from app.contact_sync.crm_merges import merged_into
from app.company_import.details import import_into_company
from app.company_import.links import link_company, linked_contact, links_elsewhere, unlink_company
from app.company_import.search import MAX_QUERY, connected_xero, contact_choices
from app.crm_names import crm_name
from app.models import Installation
from app.ui_auth import View, issue_action_token, issue_view_token, read_action_token
from app.views.common import crm_frame_headers, form_pd, message_page, open_record, page_alerts, require_act
from app.views.common import view_installation
from xero.client import ContactDetails
from xero.errors import FixData, XeroFailure
from xero.status import LABELS

bp = Blueprint("company", __name__)
bp.after_request(crm_frame_headers)


@bp.get("/ui/company/<company_id>")
def company_page(company_id: str) -> str:
    """The company's Xero contact (or suggested contacts and a search, to link or import one),
    what it owes, recent invoices."""
    opened = open_record("company", company_id)
    installation = opened.installation
    linked = linked_contact(installation.id, company_id)
    contact_id, contact_name = linked if linked else (None, "")
    owed = company_invoices(installation.id, contact_id)
    typed = request.args.get("q")
    query = " ".join((typed or "").split())[:MAX_QUERY].strip()
    results, suggestions, problem = contact_choices(installation, company_id, query, contact_id is not None)
    if typed is not None and not query:
        problem = "Type a name, email address, contact number or tax number to search for."
    cut = len(" ".join((typed or "").split())) > MAX_QUERY
    shown = [c.contact_id for c in results] + [s.contact.contact_id for s in suggestions]
    return render_template("company.html", token=opened.token, company_id=company_id,
                           link_token=issue_action_token(opened.view, "link"),
                           import_token=issue_action_token(opened.view, "import"),
                           unlink_token=issue_action_token(opened.view, "unlink"),
                           elsewhere=links_elsewhere(installation.id, company_id, [*shown, contact_id]),
                           query_cut=cut, max_query=MAX_QUERY,
                           contact_id=contact_id, contact_name=contact_name, invoices=owed.invoices,
                           sync=company_sync(installation.id, company_id),
                           merged_into=None if linked else merged_into(installation.id, company_id),
                           outstanding=owed.outstanding, overdue=owed.overdue, query=query,
                           results=results, suggestions=suggestions, problem=problem,
                           crm_name=crm_name(installation), labels=LABELS,
                           message=request.args.get("m", ""), money=opened.money,
                           amounts_hidden=AMOUNTS_HIDDEN,
                           may_act=may_act(opened.viewer, "company", company_id),
                           pipedrive=request.args.get("pd") == "1",
                           **page_alerts(opened.view, installation, request.args.get("pd") == "1"))


@bp.post("/ui/company/<company_id>/link")
def link_contact(company_id: str) -> Response:
    """Link this CRM company to the Xero contact a person chose (replacing any earlier link)."""
    view, installation, token = _company_action(company_id, "link")
    contact = _chosen_contact(installation, company_id, token)
    link_company(installation, company_id, contact, view.user)
    others = links_elsewhere(installation.id, company_id, [contact.contact_id]).get(contact.contact_id, [])
    also = (f" It is also linked to {len(others)} other compan{'y' if len(others) == 1 else 'ies'} "
            f"({', '.join(others[:5])}), whose invoices go to it too." if others else "")
    return redirect(_company_url(company_id, token, f"Linked to {contact.name}: new invoices for "
                                                    f"this company go to that Xero contact.{also}"))


@bp.post("/ui/company/<company_id>/import")
def import_contact(company_id: str) -> Response:
    """Link, as above, and copy the contact's phone, address, website and tax number into the
    company's empty fields (what a rep typed is never overwritten)."""
    view, installation, token = _company_action(company_id, "import")
    contact = _chosen_contact(installation, company_id, token)
    outcome = import_into_company(installation, company_id, contact, view.user)
    return redirect(_company_url(company_id, token, outcome.summary()))


@bp.post("/ui/company/<company_id>/unlink")
def unlink_contact(company_id: str) -> Response:
    """Remove the company's link to its Xero contact (the first invoice matches or creates a
    contact again, by the admin's matching order)."""
    view, installation, token = _company_action(company_id, "unlink")
    removed = unlink_company(installation, company_id, view.user)
    message = ("Unlinked: the next invoice for this company matches a Xero contact again (or "
               "creates one). Nothing was changed in Xero." if removed else
               "This company was not linked to a Xero contact.")
    return redirect(_company_url(company_id, token, message))


def _company_action(company_id: str, action: str) -> tuple[View, Installation, str]:
    """The view a company form's action token grants (spent), its installation, and a page
    token for the page again (no longer-lived than the form's); a 403 page unless they may act."""
    view = read_action_token(request.form.get("a"), action, "company", company_id)
    token = issue_view_token(view)
    installation = view_installation(view)
    require_act(viewer_for(installation, view.user), "company", company_id, action)
    return view, installation, token


# Xero's ContactID (a GUID). Xero's GET /Contacts/{ContactID} also takes a contact number,
# which the company page never sends: anything else is refused before calling Xero.
_CONTACT_ID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def _chosen_contact(installation: Installation, company_id: str, token: str) -> ContactDetails:
    """The Xero contact the form names, read from Xero (one GET). A 4xx page if there is no
    such active contact; back to the page with a notice if Xero cannot answer now."""
    back = _company_url(company_id, token)
    contact_id = request.form.get("contact_id", "").strip()
    if not _CONTACT_ID.match(contact_id):
        abort(message_page("Choose a Xero contact", "Pick a contact from the suggestions or the "
                           "search results.", 400, back))
    try:
        contact = connected_xero(installation).get_contact(contact_id)
    except FixData as exc:
        if exc.status != 404:
            abort(redirect(_company_url(company_id, token, f"Xero refused to show that contact "
                                                           f"({exc}). Nothing was changed.")))
        abort(message_page("No such Xero contact", "Xero has no contact with that id (it may have "
                           "been deleted or merged in Xero). Nothing was changed.", 404, back))
    except XeroFailure as exc:
        abort(redirect(_company_url(company_id, token, f"Could not read the contact from Xero "
                                                       f"right now ({exc}). Nothing was changed.")))
    if not contact.active:
        abort(message_page("Archived in Xero", f"{contact.name} is archived in Xero, so invoices "
                           "cannot go to it. Restore it in Xero or choose another contact.",
                           409, back))
    return contact


def _company_url(company_id: str, token: str, message: str | None = None) -> str:
    """The company page again, keeping Pipedrive's panel mode (`pd`) when the form carried it."""
    return url_for("company.company_page", company_id=company_id, t=token, m=message, pd=form_pd())
