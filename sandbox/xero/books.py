"""`TenantBooks`: one organisation's books, and the helpers tests seed and tune them with."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal
from itertools import count
from typing import Any, Literal, TypeVar

import sandbox.xero.invoices as invoices
import sandbox.xero.render as render
from sandbox.xero.limits import (ADDRESS_LIMITS, CONTACT_LIMITS, PHONE_LIMITS, length_problems,
                                 nested_length_problems)
from sandbox.xero.regions import (ACCOUNT_CLASS_OF_TYPE, WINDOWS_TO_IANA, Account, Item,
                                  TaxComponent, TaxRate, zone_of)
from sandbox.xero.state import (CONTACT_TEXT_FIELDS, CURRENCY_NAMES, EMAIL, EMAILABLE_STATUSES,
                                Allocation, AllocationKind, Contact, EmailRecord, Invoice, Ledger,
                                Overpayment, Payment, Saved, SaveResult, Snapshot)
from sandbox.xero.wire import UNIT_4DP, money, to_decimal

Amount = Decimal | int | str
T = TypeVar("T")


class _RegionDefault:
    """Marks an argument that defaults to the organisation's region (e.g. its sales tax)."""

    def __repr__(self) -> str:
        return "REGION_DEFAULT"


REGION_DEFAULT: Any = _RegionDefault()


class TenantBooks(Ledger):
    """The accounting records of one tenant, plus the helpers tests seed and tune with.

    Every method takes the fake's lock, so a test may call them while the server is
    handling requests. Returned records are frozen snapshots."""

    contacts = Snapshot[Contact]("contact_by_id")
    invoices = Snapshot[Invoice]("invoice_by_id")
    emailed = Snapshot[EmailRecord]("emails")
    overpayments = Snapshot[Overpayment]("overpayment_by_id")

    # ----- saving batches (the API's PUT/POST): create (no id) or update each element -----

    def save_contacts(self, elements: Sequence[Any], *, summarize: bool) -> SaveResult:
        return self.batch(elements, summarize, self._save_contact)

    def save_invoices(self, elements: Sequence[Any], *, summarize: bool,
                      created_by_app: bool = True, unit_dp: int = 2) -> SaveResult:
        return self.batch(elements, summarize,
                          lambda raw: invoices.save_element(self, raw, created_by_app, unit_dp))

    def render_contact(self, contact: Contact, *, summary: bool = False) -> dict[str, Any]:
        """The contact as Xero shows it; IsCustomer: it has an invoice that is not deleted."""
        is_customer = any(i.contact_id == contact.contact_id and i.status != "DELETED"
                          for i in self.invoice_by_id.values())
        return render.contact(contact, is_customer=is_customer, summary=summary)

    def render_invoice(self, invoice: Invoice, *, lines: bool = True,
                       unit_dp: int = 2) -> dict[str, Any]:
        owner = self.contact_by_id.get(invoice.contact_id)
        return render.invoice(invoice, owner, lines=lines, unit_dp=unit_dp)

    def _save_one(self, save: Any, records: str, element: Mapping[str, Any], **options: Any) -> Any:
        """Save one element as a test helper does: ValueError with Xero's messages."""
        with self.lock:
            result: SaveResult = save([dict(element)], summarize=True, **options)
            if result.failed:
                errors = result.failed[0].get("ValidationErrors", [])
                raise ValueError("; ".join(e["Message"] for e in errors))
            return getattr(self, records)[result.saved_ids[0]]

    # ----- contacts -------------------------------------------------------------

    def add_contact(self, name: str, **fields: Any) -> Contact:
        """Create a contact as if typed into Xero; `fields` use Xero's JSON names, e.g.
        ``add_contact("Acme", EmailAddress="ap@acme.test")``. ValueError if Xero would refuse."""
        return self._save_one(self.save_contacts, "contact_by_id", {"Name": name, **fields})

    def archive_contact(self, contact_id: str) -> Contact:
        element = {"ContactID": contact_id, "ContactStatus": "ARCHIVED"}
        return self._save_one(self.save_contacts, "contact_by_id", element)

    def merge_contact(self, contact_id: str, into_id: str) -> Contact:
        """Merge the contact into another in Xero's UI (the API cannot merge). Xero keeps the
        merged contact archived, naming the survivor in MergedToContactID ("ID for the
        destination of a merged contact": the spec's Contact,
        tests/specs/xero/xero_accounting.yaml)."""
        with self.lock:
            self.contact(into_id)  # the survivor must exist
            merged = replace(self.contact(contact_id), contact_status="ARCHIVED",
                             merged_to=into_id, updated_ms=self.stamp())
            self.contact_by_id[merged.contact_id] = merged
            return merged

    def set_contact_website(self, contact_id: str, website: str) -> Contact:
        """Type a website into the contact in Xero's UI. The API cannot: the spec marks
        Contact.Website "read only", so saves through the API leave it alone."""
        with self.lock:
            updated = replace(self.contact(contact_id), website=website, updated_ms=self.stamp())
            self.contact_by_id[updated.contact_id] = updated
            return updated

    # ----- saving contacts ----------------------------------------------------------

    def _save_contact(self, raw: Any) -> Saved:
        if not isinstance(raw, dict):
            return render.failed_contact({}, None, ["A contact must be a JSON object"]), None
        existing, errors = None, []
        contact_id = raw.get("ContactID")
        if contact_id:
            existing = self.find_contact(str(contact_id))
            if existing is None:
                errors.append(f"Contact with ContactID '{contact_id}' could not be found")
        contact = self._merged_contact(raw, existing, errors)
        if contact is not None:
            errors.extend(self._contact_problems(contact))
        if errors or contact is None:
            return render.failed_contact(raw, existing, errors), None
        self.contact_by_id[contact.contact_id] = contact
        return self.render_contact(contact), contact.contact_id

    def _merged_contact(self, raw: Mapping[str, Any], existing: Contact | None,
                        errors: list[str]) -> Contact | None:
        """`existing` with the fields `raw` carries, or a new contact; None if unreadable."""
        changes: dict[str, Any] = {}
        for key, attr in CONTACT_TEXT_FIELDS.items():
            if key not in raw:
                continue
            value = raw[key]
            if value is not None and not isinstance(value, str):
                errors.append(f"{key} must be a string")
                continue
            changes[attr] = value.strip() if isinstance(value, str) else None
            if attr == "name" and changes[attr] is None:
                changes[attr] = ""
        for key, attr in (("Phones", "phones"), ("Addresses", "addresses")):
            if isinstance(raw.get(key), list):
                changes[attr] = tuple(p for p in raw[key] if isinstance(p, dict))
        if isinstance(raw.get("PaymentTerms"), dict):
            changes["payment_terms"] = raw["PaymentTerms"]
        if errors:
            return None
        base = existing or Contact(str(uuid.uuid4()), name="")
        return replace(base, **changes, updated_ms=self.stamp())

    def _contact_problems(self, contact: Contact) -> list[str]:
        problems: list[str] = []
        if not contact.name:
            problems.append("The contact name must be specified.")
        texts = render.fields(contact, CONTACT_TEXT_FIELDS)
        problems.extend(length_problems(texts, CONTACT_LIMITS))
        problems.extend(nested_length_problems(contact.phones, PHONE_LIMITS, "Phone "))
        problems.extend(nested_length_problems(contact.addresses, ADDRESS_LIMITS, "Address "))
        if contact.email_address and not EMAIL.match(contact.email_address):
            problems.append("Email address must be valid.")
        if contact.contact_status not in ("ACTIVE", "ARCHIVED"):
            status = contact.contact_status
            problems.append(f"ContactStatus '{status}' cannot be set through the API.")
        currency = contact.default_currency
        if currency and currency not in self.currency_codes:
            problems.append(f"Organisation is not subscribed to currency {currency}")
        if contact.name and contact.contact_status == "ACTIVE" and self._name_taken(contact):
            problems.append(
                f"The contact name {contact.name} is already assigned to another contact. "
                "The contact name must be unique across all active contacts."
            )  # platform-facts: Name unique among active contacts
        return problems

    def _name_taken(self, contact: Contact) -> bool:
        wanted = contact.name.casefold()
        return any(other.contact_id != contact.contact_id and other.contact_status == "ACTIVE"
                   and other.name.casefold() == wanted for other in self.contact_by_id.values())

    # ----- reference data ---------------------------------------------------------

    def add_item(self, code: str, name: str, unit_price: Amount, *, account_code: str = "200",
                 tax_type: str = REGION_DEFAULT, description: str | None = None) -> Item:
        """An item (Xero: Products and services); `tax_type` defaults to the region's sales
        rate (AU OUTPUT, NZ/UK OUTPUT2, US OUTPUT)."""
        return self._add("item", self.item_by_code, code, lambda: Item(
            str(uuid.uuid4()), code, name, money(to_decimal(unit_price)), account_code,
            self._sales_tax(tax_type), description or name, self.stamp()))

    def add_account(self, code: str, name: str, type_: str = "REVENUE", *,
                    tax_type: str | None = REGION_DEFAULT) -> Account:
        """An account of Xero Type `type_`; its Class follows the Types doc. `tax_type`
        defaults to the region's sales rate; pass None for an account without one."""
        account_class = ACCOUNT_CLASS_OF_TYPE.get(type_, "ASSET")
        return self._add("account", self.account_by_code, code, lambda: Account(
            str(uuid.uuid4()), code, name, type_, account_class,
            tax_type=self._sales_tax(tax_type), updated_ms=self.stamp()))

    def _sales_tax(self, tax_type: str | None) -> str | None:
        return self.setup.sales_tax_type if tax_type is REGION_DEFAULT else tax_type

    def _add(self, kind: str, table: dict[str, T], code: str, make: Callable[[], T]) -> T:
        with self.lock:
            if code in table:
                raise ValueError(f"{kind} code {code!r} already exists")
            table[code] = make()
            return table[code]

    def set_account_status(self, code: str, status: Literal["ACTIVE", "ARCHIVED"]) -> Account:
        """Archive (or reactivate) an account, e.g. to provoke "not a valid code"."""
        with self.lock:
            return _changed(self.account_by_code, code, status=status, updated_ms=self.stamp())

    def enable_currency(self, code: str) -> None:
        """Subscribe the organisation to a currency (Xero: Settings > Currencies)."""
        if code not in CURRENCY_NAMES:
            raise ValueError(f"unknown currency {code!r}; known: {sorted(CURRENCY_NAMES)}")
        with self.lock:
            if code not in self.currency_codes:
                self.currency_codes.append(code)

    def add_tax_rate(self, name: str, components: Sequence[tuple[str, Amount]] | Amount, *,
                     report_tax_type: str | None = REGION_DEFAULT,
                     applies_to: Iterable[str] = ("ASSET", "EQUITY", "LIABILITY", "REVENUE"),
                     ) -> TaxRate:
        """A rate the organisation adds (Xero: Settings > Tax rates), as POST /TaxRates would,
        numbered TAX001, TAX002, ... (TaxRates doc). `components`: a rate ("8.5") or (name, rate)
        pairs, e.g. ``[("State Tax", "7.5"), ("Local", "1")]``. `report_tax_type` is required
        for AU, NZ and UK orgs and unsupported for US ones (TaxRates doc, POST): it defaults to
        OUTPUT there and to None for US. `applies_to`: account classes (a sales rate's)."""
        if report_tax_type is REGION_DEFAULT:
            report_tax_type = None if self.region == "US" else "OUTPUT"
        if isinstance(components, Decimal | int | str):
            components = [(self.setup.tax_component, components)]
        parts = tuple(TaxComponent(part, to_decimal(rate).quantize(UNIT_4DP))
                      for part, rate in components)
        with self.lock:
            tax_type = next(f"TAX{n:03d}" for n in count(1) if f"TAX{n:03d}" not in self.rate_by_type)
            rate = TaxRate(tax_type, name, parts, report_tax_type, frozenset(applies_to))
            self.rate_by_type[rate.tax_type] = rate
            return rate

    def set_tax_rate_status(self, tax_type: str,
                            status: Literal["ACTIVE", "ARCHIVED", "DELETED"]) -> TaxRate:
        """Archive or delete a rate (then Xero refuses it on new lines), or restore it."""
        with self.lock:
            return _changed(self.rate_by_type, tax_type, status=status)

    def set_timezone(self, name: str) -> None:
        """Set Organisation.Timezone (Xero: Settings > Organisation details). A name the fake
        cannot place (one of the spec's enum values CLDR no longer maps) is still reported;
        the fake's own "today" then stays in the previous zone."""
        with self.lock:
            self.timezone = name
            if name in WINDOWS_TO_IANA:  # only dates the fake makes up itself use the zone
                self.zone = zone_of(name)

    # ----- invoices as finance changes them in Xero ----------------------------------

    def add_invoice(self, invoice: Mapping[str, Any]) -> Invoice:
        """Create an invoice as if entered in Xero's UI (not "created by my app") from a Xero
        JSON element; ValueError with the validation messages if Xero would refuse it."""
        return self._save_one(self.save_invoices, "invoice_by_id", invoice, created_by_app=False)

    def edit_invoice(self, invoice_id: str, changes: Mapping[str, Any]) -> Invoice:
        """Finance edits the invoice in Xero's UI (`changes` in Xero's JSON names, e.g.
        ``{"Status": "AUTHORISED"}`` or new ``LineItems``). Xero bumps UpdatedDateUTC on
        every save (spec: Invoice.UpdatedDateUTC "Last modified date UTC format")."""
        element = {**changes, "InvoiceID": invoice_id}
        return self._save_one(self.save_invoices, "invoice_by_id", element, created_by_app=False)

    def pay(self, invoice_id: str, amount: Amount, paid_on: date | None = None, *,
            reference: str | None = None) -> Payment:
        """Record a payment on an AUTHORISED invoice (as a bank feed reconciliation would):
        AmountPaid/AmountDue change, PAID with FullyPaidOnDate when nothing is left due."""
        value = money(to_decimal(amount))
        with self.lock:
            invoice = self.invoice(invoice_id)
            if invoice.status != "AUTHORISED":
                raise ValueError(f"payments need an AUTHORISED invoice, not {invoice.status}")
            if value <= 0 or value > invoice.amount_due:
                raise ValueError(f"payment {value} must be > 0 and <= due {invoice.amount_due}")
            stamp = self.stamp()
            day = paid_on or self.today()
            payment = Payment(str(uuid.uuid4()), day, value, reference, stamp)
            self._paid_down(replace(invoice, amount_paid=invoice.amount_paid + value,
                                    payments=(*invoice.payments, payment), updated_ms=stamp), day)
            return payment

    def receive(self, invoice_id: str, amount: Amount, paid_on: date | None = None, *,
                reference: str | None = None) -> tuple[Payment, Overpayment | None]:
        """Money received against an invoice, as the bookkeeper reconciles a bank line: up to
        what is due it is a Payment on the invoice; beyond that, the excess is an Overpayment
        (a credit on the contact), never a bigger Payment. Xero refuses a Payment above the
        amount outstanding ("Payment amount exceeds the amount outstanding on this document",
        its validation message as API users quote it); its UI records an overpaid invoice by
        matching the bank line to the invoice and adding a Receive Money "Overpayment" for the
        rest (help.xero.com/au/BankAccounts_Overpayment_Rec), and the Overpayments docs say
        overpayments are created as bank transactions, then allocated to invoices or refunded
        (developer.xero.com/documentation/api/overpayments).

        What the docs leave unclear, and this fake chooses: the overpayment's Date and
        Reference are the payment's (unverified); it is in the invoice's currency; it stays
        unallocated (Xero only prompts to allocate it when the next invoice for that contact
        is approved - allocate it with `apply_overpayment`)."""
        value = money(to_decimal(amount))
        with self.lock:
            invoice = self.invoice(invoice_id)
            if invoice.status != "AUTHORISED":
                raise ValueError(f"payments need an AUTHORISED invoice, not {invoice.status}")
            if value <= 0:
                raise ValueError(f"a payment must be more than 0, not {value}")
            due = invoice.amount_due
            day = paid_on or self.today()
            payment = self.pay(invoice_id, min(value, due), day, reference=reference)
            if value <= due:
                return payment, None
            over = Overpayment(str(uuid.uuid4()), invoice.contact_id, day, invoice.currency_code,
                               value - due, reference, value - due, invoice_id, self.stamp())
            self.overpayment_by_id[over.overpayment_id] = over
            return payment, over

    def apply_overpayment(self, overpayment_id: str, invoice_id: str, amount: Amount) -> Invoice:
        """Allocate part of an overpayment's remaining credit to an AUTHORISED invoice of the
        same contact (PUT /Overpayments/{id}/Allocations): the invoice lists it under
        Overpayments and counts it in AmountCredited; RemainingCredit goes down."""
        value = money(to_decimal(amount))
        with self.lock:
            over = self.overpayment_by_id.get(overpayment_id)
            if over is None:
                raise ValueError(f"no overpayment {overpayment_id}")
            if self.invoice(invoice_id).contact_id != over.contact_id:
                raise ValueError("an overpayment is allocated to its own contact's invoices only")
            if value > over.remaining_credit:
                raise ValueError(f"only {over.remaining_credit} of the overpayment is left")
            invoice = self.allocate_overpayment(invoice_id, value)
            self.overpayment_by_id[overpayment_id] = replace(
                over, remaining_credit=over.remaining_credit - value, updated_ms=self.stamp())
            return invoice

    def delete_payment(self, invoice_id: str, payment_id: str) -> Invoice:
        """Remove a payment (a mistaken reconciliation): a PAID invoice goes back to AUTHORISED."""
        with self.lock:
            invoice = self.invoice(invoice_id)
            payment = next((p for p in invoice.payments if p.payment_id == payment_id), None)
            if payment is None:
                raise ValueError(f"no payment {payment_id} on {invoice_id}")
            return self.keep(replace(
                invoice, amount_paid=invoice.amount_paid - payment.amount,
                payments=tuple(p for p in invoice.payments if p is not payment),
                status="AUTHORISED", fully_paid_on=None, updated_ms=self.stamp()))

    # Credit notes, prepayments (money received before the invoice) and overpayments (of
    # another invoice) applied to an AUTHORISED invoice: AmountCredited, PAID when none is due.

    def credit(self, invoice_id: str, amount: Amount) -> Invoice:
        return self._allocate(invoice_id, "CreditNote", amount, "credit")

    def allocate_prepayment(self, invoice_id: str, amount: Amount) -> Invoice:
        return self._allocate(invoice_id, "Prepayment", amount)

    def allocate_overpayment(self, invoice_id: str, amount: Amount) -> Invoice:
        return self._allocate(invoice_id, "Overpayment", amount)

    def _allocate(self, invoice_id: str, kind: AllocationKind, amount: Amount,
                  verb: str = "allocate") -> Invoice:
        value = money(to_decimal(amount))
        with self.lock:
            invoice = self.invoice(invoice_id)
            if invoice.status != "AUTHORISED" or value <= 0 or value > invoice.amount_due:
                raise ValueError(f"cannot {verb} {value} to a {invoice.status} invoice")
            allocation = Allocation(kind, str(uuid.uuid4()), value, self.today())
            return self._paid_down(replace(
                invoice, amount_credited=invoice.amount_credited + value,
                allocations=(*invoice.allocations, allocation), updated_ms=self.stamp()))

    def _paid_down(self, invoice: Invoice, day: date | None = None) -> Invoice:
        """Store `invoice`; PAID (on `day`, default today) when nothing is left due."""
        if invoice.amount_due == 0:
            invoice = replace(invoice, status="PAID", fully_paid_on=day or self.today())
        return self.keep(invoice)

    def void(self, invoice_id: str) -> Invoice:
        """Void an AUTHORISED invoice without payments (Xero's only way to cancel one)."""
        with self.lock:
            invoice = self.invoice(invoice_id)
            if invoice.status != "AUTHORISED" or invoice.payments:
                message = f"only an unpaid AUTHORISED invoice can be voided ({invoice.status})"
                raise ValueError(message)
            return self.keep(replace(invoice, status="VOIDED", updated_ms=self.stamp()))

    def email_invoice(self, invoice_id: str) -> str | None:
        """Send the invoice to its contact; the problem text if Xero would refuse."""
        with self.lock:
            invoice = self.invoice(invoice_id)
            contact = self.contact_by_id.get(invoice.contact_id)
            if invoice.status not in EMAILABLE_STATUSES:
                return f"Invoices with a status of {invoice.status} cannot be emailed."
            if contact is None or not contact.email_address:
                return "The contact does not have a valid email address."
            self.emails.append(EmailRecord(invoice.invoice_id, invoice.invoice_number,
                                           contact.email_address, self.clock.now()))
            self.keep(replace(invoice, sent_to_contact=True, updated_ms=self.stamp()))
            return None


def _changed(table: dict[str, T], key: str, **changes: Any) -> T:
    """Replace the record stored under `key` with a changed copy; returns the copy."""
    table[key] = replace(table[key], **changes)  # type: ignore[type-var]
    return table[key]
