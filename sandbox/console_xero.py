"""The console's mock Xero: the organisations' sales invoices, where the bookkeeper records a
payment (overpayments included) or voids an invoice, the invoice's own page (where Paydeck's
"Open in Xero" deep link lands) and the customer's online invoice (the OnlineInvoice link).

Each change goes into the fake Xero's books and out as a signed Xero webhook to Paydeck, as
Xero tells subscribed apps within seconds.
"""

from __future__ import annotations

from typing import Any

import requests
from flask import Flask, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from sandbox.console_records import Problem, parse_number
from sandbox.demo import Sandbox
from sandbox.xero.books import TenantBooks
from sandbox.xero.state import Invoice


def register_xero(app: Flask, sandbox: Sandbox) -> None:
    xero, paydeck = sandbox.xero, sandbox.paydeck_url

    def books() -> list[dict[str, Any]]:
        names = {t.tenant_id: t.name for t in xero.tenants}
        found = []
        for crm, tenant in sandbox.tenants.items():
            ledger = xero.accounting(tenant)
            found.append({"crm": crm, "tenant": tenant, "name": names[tenant],
                          "invoices": sorted(ledger.invoices, key=lambda i: i.invoice_number,
                                             reverse=True),
                          "overpayments": ledger.overpayments,
                          "contacts": {c.contact_id: c.name for c in ledger.contacts}})
        return found

    def locate(invoice_id: str) -> tuple[str, TenantBooks, Invoice]:
        for tenant in sandbox.tenants.values():
            ledger = xero.accounting(tenant)
            invoice = ledger.find_invoice(invoice_id)
            if invoice is not None:
                return tenant, ledger, invoice
        abort(404, "No invoice with that id in the sandbox's Xero organisations.")

    @app.get("/xero")
    def xero_page() -> str:
        return render_template("xero.html", books=books(), message=request.args.get("m", ""),
                               error=request.args.get("e", ""))

    # Paydeck's "Open in Xero" link: Xero's deep link to an invoice is
    # https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID=<id> (the xero_app_base
    # setting points Paydeck at this console in the sandbox).
    @app.get("/xero/AccountsReceivable/View.aspx")
    def xero_invoice() -> str:
        invoice_id = request.args.get("InvoiceID", "")
        if not invoice_id or len(invoice_id) > 64:
            abort(400, "This link names no invoice (InvoiceID is missing).")
        tenant, ledger, invoice = locate(invoice_id)
        return render_template(
            "xero_invoice.html", tenant=tenant, org=ledger.organisation_name, inv=invoice,
            contact=ledger.contact_by_id.get(invoice.contact_id),
            overpayments=[o for o in ledger.overpayments if o.invoice_id == invoice.invoice_id],
            message=request.args.get("m", ""), error=request.args.get("e", ""))

    @app.get("/xero/online/<token>")
    def xero_online_invoice(token: str) -> str:
        """The customer's view of an invoice (GET /Invoices/{id}/OnlineInvoice's link)."""
        for tenant in sandbox.tenants.values():
            ledger = xero.accounting(tenant)
            invoice = next((i for i in ledger.invoices if i.online_token == token), None)
            if invoice is not None:
                return render_template("xero_online.html", org=ledger.organisation_name,
                                       inv=invoice, contact=ledger.contact_by_id.get(invoice.contact_id))
        abort(404, "This online invoice does not exist (or no longer does).")

    @app.post("/xero/<tenant>/invoices/<invoice_id>/<any(pay, void):verb>")
    def xero_change(tenant: str, invoice_id: str, verb: str) -> Response:
        if tenant not in sandbox.tenants.values():
            abort(404)
        ledger = xero.accounting(tenant)
        back = request.form.get("back") == "invoice"

        def again(**args: str) -> Response:
            if back:
                return redirect(url_for("xero_invoice", InvoiceID=invoice_id, **args))
            return redirect(url_for("xero_page", **args))

        try:
            invoice = ledger.invoice(invoice_id)
        except KeyError:
            abort(404)
        over = None
        try:
            if verb == "pay":
                amount = parse_number(request.form.get("amount"), "amount")
                _, over = ledger.receive(invoice_id, amount or 0)
            else:
                ledger.void(invoice_id)
        except (Problem, ValueError) as exc:
            return again(e=str(exc))
        try:
            sent = xero.webhooks.deliver(f"{paydeck}/webhooks/xero", sandbox.xero_webhook_key)
        except requests.RequestException as exc:  # Paydeck is down: the change stands, untold
            status = f"not delivered ({exc.__class__.__name__})"
        else:
            status = "not sent" if sent is None else f"HTTP {sent.status_code}"
        if verb == "void":
            done = "Invoice voided"
        elif over is not None:
            done = (f"Payment of {invoice.amount_due} recorded and {over.total} kept as an "
                    f"overpayment (a credit for the contact)")
        else:
            done = "Payment recorded"
        return again(m=f"{done} on {invoice.invoice_number}; webhook to Paydeck: {status}.")
