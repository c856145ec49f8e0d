"""The deal's invoice beyond the summary: Xero's PDF, streamed through Paydeck, and the send /
resend email button. The invoice section of the deal page itself is app/invoice_view.py's
(what it shows) and cards.deal_page's (the page)."""

from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, abort, redirect, request, stream_with_context, url_for

from app.access.viewer import viewer_for
from app.card_data.deal import deal_link
from app.connections import xero_client
from app.invoice_email import email_problem, enqueue_email
from app.models import ConnectionStatus
from app.tokens import ReconnectNeeded as TokenReconnectNeeded
from app.tokens import TokenUnavailable
from app.ui_auth import View, issue_view_token, read_action_token
from app.views.common import crm_frame_headers, form_pd, message_page, open_record, require_act
from app.views.common import view_installation
from xero.errors import FixData, ReconnectNeeded, RetryLater, XeroFailure

log = logging.getLogger(__name__)
bp = Blueprint("invoice", __name__)
bp.after_request(crm_frame_headers)

_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@bp.get("/ui/deal/<deal_id>/invoice.pdf")
def invoice_pdf(deal_id: str) -> Response:
    """Xero's PDF of the deal's invoice, for a viewer whose page token is for this deal and
    who may see its money; streamed piece by piece from Xero (never held whole)."""
    opened = open_record("deal", deal_id)
    if not opened.money:
        abort(message_page("Amounts are hidden", "Your admin's settings do not let you see this "
                           "deal's amounts, so Paydeck does not show its invoice.", 403))
    link = deal_link(opened.installation.id, deal_id)
    if link is None or not link.xero_invoice_id:
        abort(message_page("No invoice yet", "This deal has no invoice in Xero yet.", 404))
    connection = opened.installation.xero_connection
    if connection is None or connection.status != ConnectionStatus.CONNECTED:
        abort(message_page("Xero is not connected", "Reconnect Xero in Paydeck's settings to "
                           "open the PDF.", 409))
    try:
        pieces = xero_client(connection, max_wait=2.0).invoice_pdf(link.xero_invoice_id)
    except (RetryLater, TokenUnavailable) as exc:
        abort(message_page("Xero is busy", f"Xero cannot send the PDF right now ({exc}). Try "
                           "again in a minute.", 503))
    except (ReconnectNeeded, TokenReconnectNeeded):
        abort(message_page("Xero is not connected", "Reconnect Xero in Paydeck's settings to "
                           "open the PDF.", 409))
    except (FixData, XeroFailure) as exc:
        log.info("invoice PDF of %s refused: %s", link.xero_invoice_id, exc)
        abort(message_page("Xero did not send the PDF", f"Xero answered: {exc}", 502))
    name = _FILE_NAME.sub("-", link.invoice_number or "invoice").strip("-") or "invoice"
    response = Response(stream_with_context(pieces), mimetype="application/pdf",
                        direct_passthrough=True)
    response.headers["Content-Disposition"] = f'inline; filename="{name}.pdf"'
    return response


@bp.post("/ui/deal/<deal_id>/email")
def email_invoice(deal_id: str) -> Response:
    """The send / resend button: Xero emails the invoice to its contact (from a job)."""
    view = read_action_token(request.form.get("a"), "email", "deal", deal_id)
    installation = view_installation(view)
    require_act(viewer_for(installation, view.user), "deal", deal_id, "email")
    link = deal_link(installation.id, deal_id)
    problem = email_problem(link)
    if problem:
        return _back(deal_id, view, f"Not emailed: {problem}")
    assert link is not None
    # A new attempt each press: a resend is not answered with the last one's replay.
    enqueue_email(link, view.user, attempt=f"page:{view.user}:{request.form.get('a', '')[:8]}")
    to = (link.detail or {}).get("contact_email")
    return _back(deal_id, view, f"Xero is emailing invoice {link.invoice_number}"
                                f"{f' to {to}' if to else ''}: the page shows it once sent.")


def _back(deal_id: str, view: View, message: str) -> Response:
    return redirect(url_for("cards.deal_page", deal_id=deal_id, t=issue_view_token(view), m=message,
                            pd=form_pd()))
