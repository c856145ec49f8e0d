"""The console's CRM editing: a newcomer creates and edits deals, their line items (product,
quantity, discount), products and companies in the fake HubSpot and Pipedrive.

Every change goes through the fakes' seeding helpers, which act as a user in the CRM's UI
(HubSpot `changeSource: CRM_UI`, Pipedrive change_source "app"), so the fakes fire the
webhooks the real CRMs would: a new HubSpot deal is a `deal.creation`, a Pipedrive deal whose
products change is a `change.deal` with its new value. Names are kept exactly as typed (HTML
and non-ASCII included); the templates escape them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal

from flask import Flask, abort, redirect, request, url_for
from werkzeug.wrappers import Response

from sandbox.demo import Sandbox
from sandbox.kit.errors import VendorError

NAME_MAX = 255  # Xero's contact Name limit: longer names could never reach Xero anyway
# Plain numbers, or with comma thousands separators: 1000, 1000.5, 1,000.00.
_NUMBER = re.compile(r"(\d{1,3}(,\d{3})+|\d+)(\.\d+)?")


class Problem(ValueError):
    """What the newcomer typed cannot be used; the page says why."""


def parse_number(text: str | None, what: str, *, places: int = 2, required: bool = True
                 ) -> Decimal | None:
    """A non-negative Decimal from a form: "1,000.00" is 1000.00. At most `places` decimals;
    never a float."""
    raw = (text or "").strip().replace("\u00a0", "").replace(" ", "")
    if not raw:
        if required:
            raise Problem(f"Enter the {what}.")
        return None
    if not _NUMBER.fullmatch(raw):
        raise Problem(f"The {what} must be a number like 1,000.00 (not {text!r}).")
    value = Decimal(raw.replace(",", ""))
    if -value.as_tuple().exponent > places:  # type: ignore[operator]
        raise Problem(f"The {what} has more than {places} decimal places.")
    return value


def parse_name(text: str | None, what: str = "name") -> str:
    name = (text or "").strip()
    if not name:
        raise Problem(f"Enter a {what}.")
    if len(name) > NAME_MAX:
        raise Problem(f"The {what} is longer than {NAME_MAX} characters.")
    return name


def parse_discount(text: str | None) -> Decimal | None:
    value = parse_number(text, "discount (%)", required=False)
    if value is not None and value > 100:
        raise Problem("A discount is at most 100%.")
    return value


def quantity(text: str | None) -> Decimal:
    value = parse_number(text, "quantity", places=4)
    assert value is not None
    if value == 0:
        raise Problem("The quantity must be more than 0.")
    return value


def _fake_message(exc: Exception) -> str:
    if isinstance(exc, VendorError):
        try:
            body = json.loads(exc.response.get_data())
        except ValueError:
            body = {}
        return str(body.get("error") or body.get("message") or "the CRM refused it")
    return str(exc).strip("'\"")


def register_records(app: Flask, sandbox: Sandbox) -> None:
    crm, pipedrive = sandbox.hubspot.crm, sandbox.pipedrive
    api = pipedrive.api

    def done(endpoint: str, message: str, **values: object) -> Response:
        return redirect(url_for(endpoint, m=message, **values))

    def attempt(endpoint: str, change: Callable[[], str], **values: object) -> Response:
        """Run `change`; on bad input or a refusal by the fake, back to the page saying why."""
        try:
            message = change()
        except KeyError:
            abort(404)
        except (Problem, ValueError, TypeError, VendorError) as exc:
            return redirect(url_for(endpoint, e=_fake_message(exc), **values))
        return done(endpoint, message, **values)

    # --- HubSpot ---------------------------------------------------------------------------

    def hubspot_line(product_id: str, qty: str | None, discount: str | None) -> dict[str, object]:
        if product_id not in {p["hs_object_id"] for p in crm.objects("products")}:
            raise Problem("Choose a product.")
        line: dict[str, object] = {"hs_product_id": product_id, "quantity": quantity(qty)}
        percent = parse_discount(discount)
        if percent:
            line["hs_discount_percentage"] = percent
        return line

    @app.post("/hubspot/deals")
    def hubspot_new_deal() -> Response:
        try:
            name = parse_name(request.form.get("dealname"), "deal name")
            company = request.form.get("company_id") or None
            if company and company not in {c["hs_object_id"] for c in crm.objects("companies")}:
                raise Problem("Choose a company.")
            lines = ([hubspot_line(request.form["product_id"], request.form.get("quantity"), request.form.get("discount"))]
                     if request.form.get("product_id") else [])
            amount = None if lines else parse_number(request.form.get("amount"), "amount", required=False)
        except Problem as exc:
            return redirect(url_for("index", e=str(exc)))
        extra = {"amount": amount} if amount is not None else {}
        deal_id = crm.add_deal(dealname=name, company_id=company, line_items=lines, **extra)
        return done("hubspot_deal", "Deal created.", deal_id=deal_id)

    @app.post("/hubspot/deals/<deal_id>/edit")
    def hubspot_edit_deal(deal_id: str) -> Response:
        def change() -> str:
            crm.deal(deal_id)
            values: dict[str, object] = {"dealname": parse_name(request.form.get("dealname"), "deal name")}
            if not crm.associated_ids("deals", deal_id, "line_items"):
                amount = parse_number(request.form.get("amount"), "amount", required=False)
                if amount is not None:
                    values["amount"] = amount
            crm.set_deal_properties(deal_id, values)
            return "Deal saved."
        return attempt("hubspot_deal", change, deal_id=deal_id)

    @app.post("/hubspot/deals/<deal_id>/line-items")
    def hubspot_add_line(deal_id: str) -> Response:
        def change() -> str:
            crm.deal(deal_id)
            crm.add_line_item(deal_id, **hubspot_line(request.form.get("product_id", ""),
                                                      request.form.get("quantity"), request.form.get("discount")))
            return "Line item added."
        return attempt("hubspot_deal", change, deal_id=deal_id)

    @app.post("/hubspot/deals/<deal_id>/line-items/<line_id>")
    def hubspot_edit_line(deal_id: str, line_id: str) -> Response:
        def change() -> str:
            percent = parse_discount(request.form.get("discount"))
            crm.set_line_item(deal_id, line_id, quantity=quantity(request.form.get("quantity")),
                              hs_discount_percentage="" if not percent else percent)
            return "Line item saved."
        return attempt("hubspot_deal", change, deal_id=deal_id)

    @app.post("/hubspot/products")
    def hubspot_new_product() -> Response:
        def change() -> str:
            crm.add_product(name=parse_name(request.form.get("name"), "product name"),
                            price=parse_number(request.form.get("price"), "price"),
                            hs_sku=(request.form.get("sku") or "").strip()[:100] or None)
            return "Product created."
        return attempt("index", change)

    @app.post("/hubspot/companies")
    def hubspot_new_company() -> Response:
        try:
            name = parse_name(request.form.get("name"), "company name")
        except Problem as exc:
            return redirect(url_for("index", e=str(exc)))
        domain = (request.form.get("domain") or "").strip()[:253] or None
        company_id = crm.add_company(name=name, domain=domain)
        return done("hubspot_company", "Company created.", company_id=company_id)

    @app.post("/hubspot/companies/<company_id>/edit")
    def hubspot_edit_company(company_id: str) -> Response:
        def change() -> str:
            crm.object_properties("companies", company_id)
            crm.set_properties("companies", company_id,
                               {"name": parse_name(request.form.get("name"), "company name")})
            return "Company saved."
        return attempt("hubspot_company", change, company_id=company_id)

    # --- Pipedrive -------------------------------------------------------------------------

    def pipedrive_line(product_id: str | None, qty: str | None, discount: str | None
                       ) -> dict[str, object]:
        if not (product_id or "").isdigit() or int(product_id or 0) not in api.company().products:
            raise Problem("Choose a product.")
        return {"product_id": int(product_id or 0), "quantity": quantity(qty),
                "discount": parse_discount(discount) or Decimal(0), "discount_type": "percentage"}

    def org_id(text: str | None) -> int | None:
        if not text:
            return None
        if not text.isdigit() or int(text) not in api.company().orgs:
            raise Problem("Choose an organization.")
        return int(text)

    @app.post("/pipedrive/deals")
    def pipedrive_new_deal() -> Response:
        try:
            title = parse_name(request.form.get("title"), "deal title")
            org = org_id(request.form.get("org_id"))
            lines = ([pipedrive_line(request.form.get("product_id"), request.form.get("quantity"),
                                     request.form.get("discount"))] if request.form.get("product_id") else [])
            value = None if lines else parse_number(request.form.get("value"), "value", required=False)
        except Problem as exc:
            return redirect(url_for("index", e=str(exc)))
        deal_id = api.add_deal(title, org_id=org, products=lines, value=value)
        return done("pipedrive_deal", "Deal created.", deal_id=deal_id)

    @app.post("/pipedrive/deals/<int:deal_id>/edit")
    def pipedrive_edit_deal(deal_id: int) -> Response:
        def change() -> str:
            api.update_deal(deal_id, title=parse_name(request.form.get("title"), "deal title"))
            return "Deal saved."
        return attempt("pipedrive_deal", change, deal_id=deal_id)

    @app.post("/pipedrive/deals/<int:deal_id>/products")
    def pipedrive_add_line(deal_id: int) -> Response:
        def change() -> str:
            api.deal(deal_id)
            api.add_deal_product(deal_id, **pipedrive_line(
                request.form.get("product_id"), request.form.get("quantity"), request.form.get("discount")))
            return "Product added to the deal."
        return attempt("pipedrive_deal", change, deal_id=deal_id)

    @app.post("/pipedrive/deals/<int:deal_id>/products/<int:line_id>")
    def pipedrive_edit_line(deal_id: int, line_id: int) -> Response:
        def change() -> str:
            api.update_deal_product(deal_id, line_id, quantity=quantity(request.form.get("quantity")),
                                    discount=parse_discount(request.form.get("discount")) or Decimal(0))
            return "Product line saved."
        return attempt("pipedrive_deal", change, deal_id=deal_id)

    @app.post("/pipedrive/products")
    def pipedrive_new_product() -> Response:
        def change() -> str:
            api.add_product(parse_name(request.form.get("name"), "product name"),
                            code=(request.form.get("sku") or "").strip()[:100] or None,
                            price=parse_number(request.form.get("price"), "price"))
            return "Product created."
        return attempt("index", change)

    @app.post("/pipedrive/organizations")
    def pipedrive_new_org() -> Response:
        try:
            name = parse_name(request.form.get("name"), "organization name")
        except Problem as exc:
            return redirect(url_for("index", e=str(exc)))
        return done("pipedrive_organization", "Organization created.", org_id=api.add_org(name))

    @app.post("/pipedrive/organizations/<int:org_id>/edit")
    def pipedrive_edit_org(org_id: int) -> Response:
        def change() -> str:
            api.rename_org(org_id, parse_name(request.form.get("name"), "organization name"))
            return "Organization saved."
        return attempt("pipedrive_organization", change, org_id=org_id)
