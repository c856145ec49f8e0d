"""What Paydeck sends Xero, checked against Xero's own OpenAPI document
(tests/specs/xero/xero_accounting.yaml), and the fake that enforces it.

The read-only lists here are derived from the spec file itself, never typed by hand, so a
new spec version (a newly read-only field) is checked too.
"""

from __future__ import annotations

import json
import textwrap
import time
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import cache
from typing import Any

import pytest
import requests
import yaml
from xero_python.api_client.serializer import serialize
from xero_python.accounting.models import Contacts, Invoices

from app.connections import xero_client
from app.extensions import db
from app.models import XeroConnection
from sandbox.xero import schema as xero_schema
from tests.specs import SPECS
from xero.build import DraftLine, InvoiceDraft
from xero.client import NewContact, _contact_model, _invoice_model
from xero.errors import XeroFailure
from xero.wire import READ_ONLY, ROOTS, query_value, to_json, writable_body

SPEC = SPECS / "xero" / "xero_accounting.yaml"


@cache
def spec() -> dict[str, Any]:
    with open(SPEC, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def spec_read_only(schema: str) -> set[str]:
    properties = spec()["components"]["schemas"][schema]["properties"]
    return {name for name, node in properties.items() if node.get("readOnly")}


def spec_refs(schema: str) -> dict[str, str]:
    """Property -> the schema it holds (itself, or as array items), from the spec."""
    refs = {}
    for name, node in spec()["components"]["schemas"][schema]["properties"].items():
        ref = node.get("$ref") or node.get("items", {}).get("$ref")
        if ref:
            refs[name] = ref.rsplit("/", 1)[-1]
    return refs


def spec_violations(node: Any, schema: str, where: str = "") -> list[str]:
    """Read-only properties anywhere in a serialised `schema` object, by the spec alone."""
    if isinstance(node, list):
        return [v for n, item in enumerate(node) for v in spec_violations(item, schema, f"{where}[{n}]")]
    if not isinstance(node, dict):
        return []
    found = [f"{where}.{key}" for key in node if key in spec_read_only(schema)]
    refs = spec_refs(schema)
    for key, value in node.items():
        if key in refs:
            found += spec_violations(value, refs[key], f"{where}.{key}")
    return found


def draft(**overrides: Any) -> InvoiceDraft:
    fields: dict[str, Any] = dict(
        contact_id="5b9a1c9e-6a0d-4c0e-9f5e-2f1d6c1b7a11", date=date(2026, 12, 1),
        due_date=date(2026, 12, 31), reference="HubSpot deal 1", currency="AUD",
        status="AUTHORISED", line_amount_type="Exclusive",
        lines=(DraftLine(description="Consulting", quantity=Decimal(2), unit_amount=Decimal("150.00"),
                         account_code="200", tax_type="OUTPUT"),))
    fields.update(overrides)
    return InvoiceDraft(**fields)


# ----- the tables follow the spec ---------------------------------------------------------------

def table_source(fields: dict[str, dict[str, Any]]) -> str:
    """The body of sandbox/xero/schema.py's `TABLE` as Python source, from `derive()`'s answer."""
    lines = []
    for schema, props in fields.items():
        groups: dict[str, list[str]] = {}
        for prop, (kind, read_only, nested) in props.items():
            group = kind + (" readOnly" if read_only else "")
            groups.setdefault(group, []).append(prop + (f":{nested}" if nested else ""))
        lines.append(f"    {schema!r}: {{")
        for group, names in groups.items():
            parts = textwrap.wrap(" ".join(names), 80 - len(group), break_on_hyphens=False)
            quoted = [repr(part + " ") for part in parts[:-1]] + [repr(parts[-1])]
            lines.append(f"        {group!r}: " + "\n            ".join(quoted) + ",")
        lines.append("    },")
    return "\n".join(lines)


def test_the_fakes_schema_table_is_the_specs():
    """sandbox/xero/schema.py's FIELDS is what derive() reads from the vendored spec; if Xero
    publishes a spec that differs, paste the TABLE body the failure prints."""
    derived = xero_schema.derive(spec())
    assert xero_schema.FIELDS == derived, table_source(derived)


def test_the_schema_table_is_written_as_table_source_writes_it():
    with open(xero_schema.__file__, encoding="utf-8") as handle:
        assert table_source(xero_schema.FIELDS) in handle.read()


def test_paydeck_strips_every_field_the_spec_marks_read_only():
    """Every schema reachable from the bodies Paydeck sends ({Invoices}, {Contacts}) through
    the schemas it nests: the spec's readOnly set is within xero.wire.READ_ONLY."""
    todo, seen = list(ROOTS.values()), set()
    while todo:
        schema = todo.pop()
        if schema in seen:
            continue
        seen.add(schema)
        assert spec_read_only(schema) <= READ_ONLY.get(schema, frozenset()), schema
        todo += [s for name, s in spec_refs(schema).items()
                 if s in READ_ONLY and name not in spec_read_only(schema)]
    assert {"Invoice", "Contact", "LineItem", "Phone"} <= seen


def test_the_bodies_paydeck_sends_carry_no_read_only_field():
    invoices = serialize(Invoices(invoices=[_invoice_model(draft())]))
    contacts = serialize(Contacts(contacts=[_contact_model(NewContact(
        name="Initech Pty Ltd", email="ap@initech.example", phone="+61 2 5550 1234"))]))
    # xero-python alone sends the SDK's defaults (HasAttachments: readOnly on Invoice).
    assert spec_violations(invoices["Invoices"], "Invoice") == ["[0].HasAttachments"]

    assert spec_violations(writable_body(invoices)["Invoices"], "Invoice") == []
    assert spec_violations(writable_body(contacts)["Contacts"], "Contact") == []
    assert not {"HasErrors", "HasValidationErrors", "HasAttachments"} & (
        set(writable_body(invoices)["Invoices"][0]) | set(writable_body(contacts)["Contacts"][0]))


def test_query_booleans_are_written_lowercase():
    assert [query_value(v) for v in (True, False, 4, "x")] == ["true", "false", 4, "x"]


# ----- the fake refuses what the spec does not allow; Paydeck's calls pass ------------------------

@pytest.fixture
def xero(xero_connected, fake_xero):
    app, _, connection_id = xero_connected
    fake, url = fake_xero
    with app.app_context():
        connection = db.session.get(XeroConnection, connection_id)
        tenant = connection.tenant_id
        token = connection.access_token
    headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": tenant}

    def raw(method: str, path: str, **kwargs: Any) -> requests.Response:
        sent = {**headers, **kwargs.pop("headers", {})}
        return requests.request(method, f"{url}/api.xro/2.0{path}", headers=sent, timeout=5,
                                **kwargs)

    return app, connection_id, fake, tenant, raw


def test_paydecks_client_sends_lowercase_booleans_the_fake_accepts(xero):
    app, connection_id, fake, tenant, _ = xero
    with app.app_context():
        client = xero_client(db.session.get(XeroConnection, connection_id))
        (made,) = client.create_contacts([NewContact(name="Initech Pty Ltd", email="ap@i.example")])
        listed = list(client.contacts_changed_since(datetime(2000, 1, 1, tzinfo=timezone.utc)))
        (invoice,) = client.create_invoices([draft(contact_id=made.contact_id)], "key-1")

    assert made.contact_id and not made.errors and invoice.invoice_id and not invoice.errors
    assert "Initech Pty Ltd" in [c.name for c in listed]
    queries = [c.query for c in fake.api_calls if c.method in ("PUT", "GET") and "Contacts" in c.path
               or "Invoices" in c.path]
    assert "summarizeErrors=false" in queries
    assert any("includeArchived=true" in q and "summaryOnly=true" in q for q in queries)
    assert not any("False" in q or "True" in q for q in queries)


@pytest.mark.parametrize("spelling", ["False", "True"])
def test_the_fake_refuses_python_spelled_booleans(xero, spelling):
    """Real Xero is lenient here (tests/specs/README.md); the spec says boolean, we send
    `true`/`false`, and the fake holds every client to that."""
    _, _, _, _, raw = xero
    answer = raw("GET", "/Contacts", params={"summaryOnly": spelling})

    assert answer.status_code == 400 and answer.json()["Type"] == "PostDataInvalidException"


def test_the_fake_refuses_every_read_only_invoice_and_contact_field(xero):
    """One request per field the spec marks readOnly (read from the spec file), each refused
    with Xero's 400 ValidationException naming the field; nothing is saved."""
    _, _, fake, tenant, raw = xero
    contact_id = fake.accounting(tenant).add_contact("Initech Pty Ltd").contact_id
    invoice = {"Type": "ACCREC", "Contact": {"ContactID": contact_id}, "LineItems": [
        {"Description": "x", "Quantity": 1, "UnitAmount": 1, "AccountCode": "200"}]}
    cases = [("Invoices", invoice, f) for f in sorted(spec_read_only("Invoice"))]
    cases += [("Contacts", {"Name": "Other Co"}, f) for f in sorted(spec_read_only("Contact"))]
    assert len(cases) >= 20  # 18 on Invoice and 3 on Contact in spec 16.1.0

    for key, element, field in cases:
        answer = raw("PUT", f"/{key}", params={"summarizeErrors": "false"},
                     json={key: [{**element, field: _a_value(key[:-1], field)}]})
        body = answer.json()
        assert answer.status_code == 400 and body["Type"] == "ValidationException", field
        messages = [e["Message"] for e in body["Elements"][0]["ValidationErrors"]]
        assert messages == [f"{field} is read-only and cannot be set"], field
    assert fake.accounting(tenant).invoices == []
    assert [c.name for c in fake.accounting(tenant).contacts] == ["Initech Pty Ltd"]


def _a_value(schema: str, field: str) -> Any:
    """A value of the field's spec type (so only its read-only-ness is wrong)."""
    kind = xero_schema.FIELDS[schema][field][0]
    return {"string": "x", "number": 1, "integer": 1, "boolean": False, "array": [],
            "object": {}}[kind]


@pytest.mark.parametrize(("change", "message"), [
    ({"Type": None}, "Type is required"),
    ({"LineItems": None}, "LineItems is required"),
    ({"Reference": 42}, "Reference must be of type string"),
    ({"LineItems": [{"Quantity": "2", "UnitAmount": 1, "AccountCode": "200"}]},
     "LineItems[0].Quantity must be of type number"),
    ({"Contact": {"ContactID": "x", "HasValidationErrors": "no"}},
     "Contact.HasValidationErrors must be of type boolean"),
])
def test_the_fake_refuses_a_missing_required_field_or_a_wrong_type(xero, change, message):
    """developer.xero.com/documentation/api/invoices: Type, Contact and LineItems are
    required to create an invoice; the spec's types for the rest."""
    _, _, fake, tenant, raw = xero
    contact_id = fake.accounting(tenant).add_contact("Initech Pty Ltd").contact_id
    element = {"Type": "ACCREC", "Contact": {"ContactID": contact_id}, "LineItems": [
        {"Description": "x", "Quantity": 1, "UnitAmount": 1, "AccountCode": "200"}], **change}
    element = {k: v for k, v in element.items() if v is not None}

    answer = raw("PUT", "/Invoices", params={"summarizeErrors": "false"},
                 json={"Invoices": [element]})

    assert answer.status_code == 400 and answer.json()["Type"] == "ValidationException"
    assert [e["Message"] for e in answer.json()["Elements"][0]["ValidationErrors"]] == [message]
    assert fake.accounting(tenant).invoices == []


# ----- money on the wire: exact Decimals, never floats ----------------------------------------------

# 0.0125 is a 4-decimal unit price (Paydeck sends unitdp=4); 1234567890123.4567 has 17
# significant digits, more than a double holds (53 bits ~ 15.95 digits): as a float it is
# 1234567890123.456787109375, whose shortest repr is 1234567890123.4568 - the last digit
# changed. 150.00 as a float is written "150.0". Each must reach Xero as the digits Paydeck
# computed (RFC 8259 section 6: a JSON number is its decimal digits; Xero reads them into a
# .NET decimal, per the spec's `format: double` only as a type name - docs unclear).
EXACT = (Decimal("0.0125"), Decimal("1234567890123.4567"), Decimal("150.00"))


def test_decimals_reach_the_fake_digit_for_digit(xero):
    app, connection_id, fake, tenant, _ = xero
    contact_id = fake.accounting(tenant).add_contact("Initech Pty Ltd").contact_id
    lines = tuple(DraftLine(description=f"Line {n}", quantity=Decimal("1.5") if n == 0 else Decimal(1),
                            unit_amount=amount, account_code="200", tax_type="OUTPUT")
                  for n, amount in enumerate(EXACT))
    fake.clear_api_calls()
    with app.app_context():
        client = xero_client(db.session.get(XeroConnection, connection_id))
        client.create_invoices([draft(contact_id=contact_id, lines=lines)], "key-exact")

    (put,) = [c for c in fake.api_calls if c.method == "PUT" and c.path.endswith("/Invoices")]
    sent = put.body.decode("ascii")
    for amount in ('"UnitAmount": 0.0125', '"UnitAmount": 1234567890123.4567',
                   '"UnitAmount": 150.00', '"Quantity": 1.5'):
        assert amount in sent, (amount, sent)
    assert "1234567890123.4568" not in sent and "150.0," not in sent
    parsed = json.loads(sent, parse_float=Decimal)  # still plain JSON
    assert [line["UnitAmount"] for line in parsed["Invoices"][0]["LineItems"]] == list(EXACT)


def test_the_json_writer_keeps_every_digit_and_refuses_floats():
    assert to_json({"a": [Decimal("0.1"), Decimal("-0.00"), Decimal("1E+3"), Decimal("12.3400")]}) \
        == '{"a": [0.1, -0.00, 1000, 12.3400]}'
    assert to_json({"Name": "Café \"x\"", "n": 3, "ok": True, "none": None}) == json.dumps(
        {"Name": "Café \"x\"", "n": 3, "ok": True, "none": None})
    with pytest.raises(TypeError):
        to_json({"UnitAmount": 0.1})
    with pytest.raises(ValueError):
        to_json(Decimal("NaN"))


def test_a_float_timeout_is_honoured(xero):
    """The SDK's REST client dropped a float timeout (rest.py honours only int or a pair):
    a Xero call that hangs must end at Paydeck's timeout, not wait for Xero."""
    app, connection_id, fake, tenant, _ = xero
    fake.inject("slow", method="GET", path_prefix="/Contacts", delay=4)
    with app.app_context():
        client = xero_client(db.session.get(XeroConnection, connection_id))
        client.timeout = 1.0
        started = time.monotonic()
        with pytest.raises(XeroFailure):
            client.search_contacts("Initech")
    assert time.monotonic() - started < 3
