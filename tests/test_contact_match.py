"""The initial contact match (issue #15 part 2) over HTTP against the fakes: a run reads every
CRM company and Xero contact (paged, resumable), the review screen shows proposed links,
already-linked, Xero-only, CRM-only and ambiguous rows, nothing is written to either vendor
before the admin approves, and approving (all, per row, or a test batch of N first) makes
links with sync state and creates records both ways in the background, never twice.

Expected rows and counts below are worked out by hand from the seeded records and the
default dedupe order (email, tax number, name)."""

from __future__ import annotations

import json

import re
from typing import Any

import pytest
import requests
from sqlalchemy import select

from app.contact_sync.initial.apply import apply_run
from app.contact_sync.initial.read import read_run
from app.extensions import db
from app.models import (
    AuditEvent,
    ContactLink,
    ContactMatchRecord,
    ContactMatchRow,
    ContactMatchRun,
    ContactSyncSettings,
    CrmKind,
    Installation,
)
from app.ui_auth import FORM_TTL, View, issue_view_token
from sandbox.hubspot.schema import object_type as type_of
from sandbox.kit.faults import Fault
from tests.test_contact_sync_xero_to_crm import TAX, Env, hub, pd  # noqa: F401

EMAIL = "billing_email"  # the HubSpot company property the admin maps Xero's email to
READS = {"GET"}


def writes(calls: list[Any]) -> list[str]:
    """Every call that could change a vendor's records (HubSpot reads by POST batch/read and
    search; none of those are writes)."""
    return [f"{c.method} {c.path}" for c in calls if c.method not in READS
            and not c.path.endswith(("/batch/read", "/search"))]


def installation_id(env: Env) -> int:
    with env.app.app_context():
        return db.session.scalars(select(Installation.id).order_by(Installation.id)).first()


def token(env: Env, ins: int | None = None) -> str:
    with env.app.app_context():
        ins = ins or installation_id(env)
        user = db.session.get(Installation, installation_id(env)).installed_by or "admin"
        return issue_view_token(View(ins, user, "settings", str(ins)), ttl=FORM_TTL)


def page(env: Env, **params: Any) -> requests.Response:
    ins = installation_id(env)
    return requests.get(f"{env.url}/ui/settings/{ins}/contact-match",
                        params={"t": token(env), **params}, timeout=10)


def action_of(html: str, path: str) -> str:
    form = re.search(r'<form method="post" action="[^"]*' + re.escape(path) + r'"[^>]*>\s*'
                     r'<input type="hidden" name="a" value="([^"]+)"', html)
    assert form, f"no form posting to {path}"
    return form.group(1)


def start(env: Env) -> requests.Response:
    ins = installation_id(env)
    answer = requests.post(f"{env.url}/ui/settings/{ins}/contact-match/start",
                           data={"a": action_of(page(env).text, "/contact-match/start")},
                           timeout=10, allow_redirects=False)
    env.work()
    return answer


def apply(env: Env, mode: str, choices: dict[int, str] | None = None, n: int | None = None,
          work: bool = True) -> requests.Response:
    ins = installation_id(env)
    html = page(env).text
    data: dict[str, Any] = {"a": action_of(html, "/contact-match/apply"), "mode": mode,
                            "run": re.search(r'name="run" value="(\d+)"', html).group(1)}
    data |= {f"c{row}": choice for row, choice in (choices or {}).items()}
    if n is not None:
        data["n"] = str(n)
    answer = requests.post(f"{env.url}/ui/settings/{ins}/contact-match/apply", data=data,
                           timeout=10, allow_redirects=False)
    if work:
        env.work()
    return answer


def rows(env: Env) -> dict[str, ContactMatchRow]:
    """Rows by the CRM company's name (or the Xero contact's, for Xero-only rows)."""
    with env.app.app_context():
        found = {}
        for row in db.session.scalars(select(ContactMatchRow)):
            db.session.expunge(row)
            found[row.crm_name or row.xero_name] = row
        return found


def the_run(env: Env) -> ContactMatchRun:
    with env.app.app_context():
        run = db.session.scalars(select(ContactMatchRun).order_by(ContactMatchRun.id.desc())).first()
        db.session.expunge(run)
        return run


def links(env: Env) -> dict[str, str]:
    with env.app.app_context():
        return dict(db.session.execute(select(ContactLink.crm_object_id,
                                              ContactLink.xero_contact_id)).all())


def audits(env: Env, action: str) -> list[AuditEvent]:
    return env.audit(action)


def seed_hubspot(env: Env) -> dict[str, str]:
    """The cases, by name -> id (companies "c:", contacts "x:")."""
    env.crm.crm.add_property("companies", EMAIL, "Billing email")
    env.settings(fields={"email": {"crm_property": EMAIL}})
    add = env.crm.crm.add_company
    ids = {
        "c:Globex": add(name="Globex", **{EMAIL: "AP@globex.test"}),
        "c:Initech": add(name="Initech", **{TAX: "51 824 753 556"}),
        "c:Umbrella": add(name="Umbrella"),
        "c:Stark": add(name="Stark", **{EMAIL: "stark@stark.test", TAX: "999"}),
        "c:Wayne Ent": add(name="Wayne Ent", **{TAX: "777"}),
        "c:Wayne Enterprises": add(name="Wayne Enterprises", **{TAX: "777"}),
        "c:Acme": add(name="Acme", **{EMAIL: "shared@acme.test"}),
        "c:Linked Co": add(name="Linked Co"),
    }
    contact = env.books.add_contact
    ids |= {
        "x:Globex Corp": contact("Globex Corp", EmailAddress="ap@globex.test").contact_id,
        "x:Initech Pty Ltd": contact("Initech Pty Ltd", TaxNumber="51824753556").contact_id,
        "x:Hooli": contact("Hooli", EmailAddress="hi@hooli.test").contact_id,
        "x:Stark Industries": contact("Stark Industries",
                                      EmailAddress="stark@stark.test").contact_id,
        "x:Stark Holdings": contact("Stark Holdings", TaxNumber="999").contact_id,
        "x:Wayne": contact("Wayne", TaxNumber="777").contact_id,
        "x:Acme East": contact("Acme East", EmailAddress="shared@acme.test").contact_id,
        "x:Acme West": contact("Acme West", EmailAddress="shared@acme.test").contact_id,
        "x:Linked Co": contact("Linked Co").contact_id,
        "x:Old Co": contact("Old Co").contact_id,
    }
    env.books.archive_contact(ids["x:Old Co"])
    env.link(ids["c:Linked Co"], ids["x:Linked Co"])
    return ids


# --- the match and the review screen ---------------------------------------------------------

def test_the_match_sorts_every_company_and_contact_and_writes_nothing(hub):
    ids = seed_hubspot(hub)
    hub.crm.clear_crm_calls()
    hub.xero.clear_api_calls()

    assert start(hub).status_code == 302

    found = rows(hub)
    assert {name: r.kind for name, r in found.items()} == {
        "Globex": "proposed", "Initech": "proposed", "Umbrella": "crm_only",
        "Stark": "ambiguous", "Wayne Ent": "ambiguous", "Wayne Enterprises": "ambiguous",
        "Acme": "ambiguous", "Linked Co": "linked", "Hooli": "xero_only"}
    assert found["Globex"].xero_id == ids["x:Globex Corp"] and found["Globex"].matched_on == "email"
    assert found["Initech"].xero_id == ids["x:Initech Pty Ltd"]
    assert found["Initech"].matched_on == "tax_number"
    # The email names one contact, the tax number another: both listed, neither proposed.
    assert {c["name"] for c in found["Stark"].candidates} == {"Stark Industries", "Stark Holdings"}
    assert "tax number matches 'Stark Holdings'" in found["Stark"].detail
    # Two companies want one contact: both ambiguous, the contact offered to neither alone.
    for name in ("Wayne Ent", "Wayne Enterprises"):
        assert [c["contact_id"] for c in found[name].candidates] == [ids["x:Wayne"]]
        assert "2 CRM companies match" in found[name].detail
    assert {c["name"] for c in found["Acme"].candidates} == {"Acme East", "Acme West"}
    assert found["Linked Co"].state == "skipped"
    run = the_run(hub)
    assert run.status == "ready" and run.counts["archived"] == 1 and run.crm_done and run.xero_done
    # Nothing written to either vendor: only list reads.
    assert writes(hub.crm.crm_calls) == [] and writes(hub.xero.api_calls) == []
    assert hub.crm.count_crm_calls("GET", "/crm/v3/objects/companies") == 1
    assert hub.xero.count_calls("GET", "/api.xro/2.0/Contacts") == 1
    assert links(hub) == {ids["c:Linked Co"]: ids["x:Linked Co"]}

    screen = page(hub)
    assert screen.status_code == 200 and "Initial contact match" in screen.text
    assert "Test batch first" in screen.text and "Approve all proposed links" in screen.text
    # What approving a link will write is said before it is approved.
    assert ("the company's name and other HubSpot-wins fields go onto the Xero contact"
            in " ".join(screen.text.split()))
    only = page(hub, kind="ambiguous")
    assert "Stark Holdings" in only.text and "Globex Corp" not in only.text
    status = requests.get(f"{hub.url}/ui/settings/{installation_id(hub)}/contact-match/status",
                          params={"t": token(hub)}, timeout=10).json()
    assert status["status"] == "ready"
    assert status["kinds"] == {"proposed": 2, "ambiguous": 4, "crm_only": 1, "xero_only": 1,
                               "linked": 1}


def test_approve_all_links_the_proposed_pairs_in_sync_and_leaves_the_rest(hub):
    ids = seed_hubspot(hub)
    start(hub)
    hub.xero.clear_api_calls()

    answer = apply(hub, "approve_all")

    assert answer.status_code == 302
    made = links(hub)
    assert made[ids["c:Globex"]] == ids["x:Globex Corp"]
    assert made[ids["c:Initech"]] == ids["x:Initech Pty Ltd"]
    assert len(made) == 3  # the two proposed and the one already linked
    found = rows(hub)
    assert found["Globex"].state == "done" and found["Stark"].state == "open"
    assert found["Umbrella"].state == "open" and found["Hooli"].state == "open"
    with hub.app.app_context():
        link = db.session.scalars(select(ContactLink).where(
            ContactLink.crm_object_id == ids["c:Initech"])).one()
        # Synced once: Xero's tax number reached the company; both hashes now stored.
        assert link.synced_at is not None and link.field_hashes["xero"]["name"]
        assert link.xero_version is not None and link.crm_version is not None
    # The tax numbers agree ("51 824 753 556" is 51824753556); the names do not, and the CRM
    # wins the name by default: the first sync renamed the Xero contacts, audited.
    assert hub.crm.crm.object_properties("companies", ids["c:Initech"])[TAX] == "51 824 753 556"
    assert hub.books.contact(ids["x:Initech Pty Ltd"]).name == "Initech"
    assert hub.books.contact(ids["x:Globex Corp"]).name == "Globex"
    synced = [e for e in audits(hub, "contact_synced") if e.detail["direction"] == "crm_to_xero"]
    assert {e.detail["company"] for e in synced} == {ids["c:Globex"], ids["c:Initech"]}
    assert synced[0].trigger == f"contact-match:{the_run(hub).id}"
    linked = [e for e in audits(hub, "contact_match_linked") if e.outcome == "ok"]
    assert {e.detail["company"] for e in linked} == {ids["c:Globex"], ids["c:Initech"]}
    event = next(e for e in linked if e.detail["company"] == ids["c:Globex"])
    assert event.detail["before"] == {"contact_id": None}
    assert event.detail["after"] == {"contact_id": ids["x:Globex Corp"], "name": "Globex Corp"}
    assert hub.xero.count_calls("POST", "/api.xro/2.0/Contacts") == 1  # both renames, one call
    assert hub.xero.count_calls("PUT", "/api.xro/2.0/Contacts") == 0
    assert the_run(hub).status == "ready" and the_run(hub).approved_at is not None


def test_per_row_choices_create_both_ways_and_pick_a_candidate(hub):
    ids = seed_hubspot(hub)
    start(hub)
    found = rows(hub)
    hub.crm.clear_crm_calls()

    apply(hub, "apply", {found["Umbrella"].id: "create_xero", found["Hooli"].id: "create_crm",
                         found["Stark"].id: f"pick:{ids['x:Stark Industries']}",
                         found["Acme"].id: "skip"})

    after = rows(hub)
    assert after["Umbrella"].state == "done" and after["Hooli"].state == "done"
    assert after["Acme"].state == "skipped" and after["Globex"].state == "open"
    umbrella = [c for c in hub.books.contact_by_id.values() if c.name == "Umbrella"]
    assert len(umbrella) == 1
    assert links(hub)[ids["c:Umbrella"]] == umbrella[0].contact_id
    assert links(hub)[ids["c:Stark"]] == ids["x:Stark Industries"]
    hooli_id = after["Hooli"].crm_id
    hooli = hub.crm.crm.object_properties("companies", hooli_id)
    assert hooli["name"] == "Hooli" and hooli[EMAIL] == "hi@hooli.test"
    assert links(hub)[hooli_id] == ids["x:Hooli"]
    assert hub.crm.count_crm_calls("POST", "/crm/v3/objects/companies/batch/create") == 1
    # One create call, and no sync pass for what was created: a created record is in sync as
    # written. The other POST is the picked Stark link's first pass (the CRM's name and tax
    # number onto the contact, per the default rules).
    posts = [json.loads(c.body) for c in hub.xero.api_calls
             if c.method == "POST" and c.path == "/api.xro/2.0/Contacts"]
    assert [p["Contacts"] for p in posts if "ContactID" not in p["Contacts"][0]] == [
        [{"Name": "Umbrella"}]]
    assert [p["Contacts"][0]["ContactID"] for p in posts if "ContactID" in p["Contacts"][0]] == [
        ids["x:Stark Industries"]]
    assert hub.crm.count_crm_calls("POST", "/crm/v3/objects/companies/batch/update") == 0
    with hub.app.app_context():
        for company in (ids["c:Umbrella"], hooli_id):
            link = db.session.scalars(select(ContactLink).where(
                ContactLink.crm_object_id == company)).one()
            assert link.linked_by == "created" and link.synced_at is not None
            assert link.field_hashes["xero"]["name"] == link.field_hashes["crm"]["name"]
        assert db.session.scalars(select(ContactLink).where(
            ContactLink.crm_object_id == ids["c:Umbrella"])).one().xero_written_version
        assert db.session.scalars(select(ContactLink).where(
            ContactLink.crm_object_id == hooli_id)).one().crm_written_version
    created = {e.detail["created_in"]: e for e in audits(hub, "contact_match_created")}
    assert created["crm"].detail["after"] == {"name": "Hooli", "email": "hi@hooli.test"}
    assert created["xero"].detail["after"] == {"name": "Umbrella"}
    assert created["xero"].detail["before"] == {} and created["xero"].outcome == "ok"
    # The results name the made records with links to them.
    batch = page(hub, batch="1")
    assert "Results of batch 1" in batch.text
    assert f"/Contacts/View/{umbrella[0].contact_id}" in batch.text
    assert f"/company/{hooli_id}" in batch.text


def test_a_test_batch_applies_only_n_rows_and_leaves_the_rest_untouched(hub):
    hub.settings()
    pairs = {}
    for i in range(8):
        company = hub.crm.crm.add_company(name=f"Pair {i}", **{TAX: f"1000{i}"})
        pairs[company] = hub.books.add_contact(f"Pair {i} Ltd", TaxNumber=f"1000{i}").contact_id
    start(hub)
    hub.crm.clear_crm_calls()

    apply(hub, "test", n=3)

    made = links(hub)
    assert len(made) == 3 and all(pairs[c] == x for c, x in made.items())
    states = sorted(r.state for r in rows(hub).values())
    assert states == ["done"] * 3 + ["open"] * 5
    # Only those three were written to (their tax numbers were already equal: nothing to sync).
    assert writes(hub.crm.crm_calls) == []
    shown = page(hub, batch="1").text
    assert shown.count("/Contacts/View/") == 3

    apply(hub, "approve_all")

    assert links(hub) == pairs


def test_out_of_scope_and_archived_contacts_are_not_offered_for_crm_creation(hub):
    hub.settings(contact_groups=["4b3c1a2e-0000-4000-8000-000000000001"])
    hub.books.add_contact("Supplier Only")
    gone = hub.books.add_contact("Gone Pty Ltd")
    hub.books.archive_contact(gone.contact_id)
    company = hub.crm.crm.add_company(name="Gone Pty Ltd")

    start(hub)

    found = rows(hub)
    assert set(found) == {"Gone Pty Ltd"}
    # The archived contact of that name is no candidate: the company is CRM-only.
    assert found["Gone Pty Ltd"].kind == "crm_only" and found["Gone Pty Ltd"].crm_id == company
    assert the_run(hub).counts["out_of_scope"] == 1 and the_run(hub).counts["archived"] == 1


# --- resuming --------------------------------------------------------------------------------

def test_a_fault_mid_paging_resumes_at_the_saved_page_without_duplicates(hub):
    hub.settings()
    for i in range(150):  # two HubSpot pages of 100
        hub.crm.crm.add_company(name=f"Company {i:03}")
    for i in range(1001):  # two Xero pages of 1,000
        hub.books.add_contact(f"Contact {i:04}")
    hub.crm.crm_api.inject(Fault("5xx", "GET", "/crm/v3/objects/companies", skip=1))
    hub.crm.clear_crm_calls()

    start(hub)  # CRM page 1 read and saved; page 2 fails: the job waits to retry

    def stored() -> int:
        return db.session.query(ContactMatchRecord).count()

    with hub.app.app_context():
        run = db.session.scalars(select(ContactMatchRun)).one()
        assert run.status == "reading" and run.crm_cursor and not run.crm_done
        assert stored() == 100
        run_id = run.id
    hub.xero.inject("5xx", method="GET", path_prefix="/Contacts", skip=1)
    with hub.app.app_context():
        assert read_run(run_id) == "reading"  # the retry: CRM page 2, Xero page 1; page 2 fails
        run = db.session.get(ContactMatchRun, run_id)
        assert run.crm_done and run.xero_page == 2 and not run.xero_done
        assert stored() == 150 + 1000
    with hub.app.app_context():
        assert read_run(run_id) == "ready"
        assert stored() == 150 + 1001
        assert db.session.query(ContactMatchRow).filter_by(kind="crm_only").count() == 150
        assert db.session.query(ContactMatchRow).filter_by(kind="xero_only").count() == 1001
    # Each page read once when it succeeded: 2 good CRM pages + 1 failure; the same for Xero.
    assert hub.crm.count_crm_calls("GET", "/crm/v3/objects/companies") == 3
    assert hub.xero.count_calls("GET", "/api.xro/2.0/Contacts") == 3
    assert writes(hub.crm.crm_calls) == [] and writes(hub.xero.api_calls) == []


def test_an_interrupted_apply_resumes_without_creating_twice(hub):
    hub.settings()
    for name in ("Alpha", "Bravo", "Charlie"):
        hub.crm.crm.add_company(name=name)
    hub.books.add_contact("Delta")
    hub.books.add_contact("Echo")
    start(hub)
    found = rows(hub)
    # Xero saves the contacts but the answer is lost; HubSpot fails its batch create outright.
    hub.xero.inject("lost_response", method="POST", path_prefix="/Contacts")
    hub.crm.inject_crm("5xx", "POST", "/crm/v3/objects/companies/batch/create")

    apply(hub, "apply", {found[n].id: "create_xero" for n in ("Alpha", "Bravo", "Charlie")}
          | {found[n].id: "create_crm" for n in ("Delta", "Echo")})

    mid = rows(hub)
    assert {mid[n].state for n in ("Alpha", "Bravo", "Charlie")} == {"sending"}
    with hub.app.app_context():
        run_id = db.session.scalars(select(ContactMatchRun.id)).one()
        apply_run(run_id)  # the retry the job scheduled: Xero's three found by name...
    retried = rows(hub)
    assert {retried[n].state for n in ("Alpha", "Bravo", "Charlie")} == {"done"}
    assert {retried[n].state for n in ("Delta", "Echo")} == {"sending"}  # ...HubSpot failed
    with hub.app.app_context():
        apply_run(run_id)  # and its retry: not in HubSpot (a 5xx does nothing): created once
    after = rows(hub)
    assert {n: (after[n].state, after[n].error) for n in after} == {
        n: ("done", None) for n in after}
    names = [c.name for c in hub.books.contact_by_id.values()]
    assert sorted(n for n in names if n in ("Alpha", "Bravo", "Charlie")) == [
        "Alpha", "Bravo", "Charlie"]  # once each: found by name, not sent again
    companies = [o.properties.get("name") for o in hub.crm.crm.records(type_of("companies"))]
    assert sorted(n for n in companies if n in ("Delta", "Echo")) == ["Delta", "Echo"]
    assert hub.crm.count_crm_calls("POST", "/crm/v3/objects/companies/batch/create") == 2
    assert len(links(hub)) == 5


# --- who may call it, bad input, where it is offered -----------------------------------------

def test_another_installations_token_is_refused(hub):
    seed_hubspot(hub)
    start(hub)
    with hub.app.app_context():
        other = Installation(crm=CrmKind.PIPEDRIVE, account_id="424242", installed_by="9")
        db.session.add(other)
        db.session.commit()
        other_id = other.id
        foreign = issue_view_token(View(other_id, "9", "settings", str(other_id)), ttl=FORM_TTL)
    ins = installation_id(hub)
    for path in ("", "/status"):
        answer = requests.get(f"{hub.url}/ui/settings/{ins}/contact-match{path}",
                              params={"t": foreign}, timeout=10)
        assert answer.status_code == 401 and "Stark" not in answer.text
    with hub.app.app_context():
        from app.ui_auth import issue_action_token
        act = issue_action_token(View(other_id, "9", "settings", str(other_id)), "match_apply")
    answer = requests.post(f"{hub.url}/ui/settings/{ins}/contact-match/apply",
                           data={"a": act, "mode": "approve_all", "run": str(the_run(hub).id)},
                           timeout=10)
    assert answer.status_code == 401 and links(hub) == {
        r.crm_id: r.xero_id for r in rows(hub).values() if r.kind == "linked"}


def test_bad_input_is_a_clear_400(hub):
    seed_hubspot(hub)
    start(hub)
    found = rows(hub)
    assert page(hub, kind="everything").status_code == 400
    assert page(hub, page="0").status_code == 400
    bad = apply(hub, "apply", {found["Globex"].id: "create_crm"}, work=False)
    assert bad.status_code == 400 and "not a choice for a proposed row" in bad.text
    foreign_pick = apply(hub, "apply", {found["Acme"].id: "pick:not-a-candidate"}, work=False)
    assert foreign_pick.status_code == 400
    assert apply(hub, "test", n=0, work=False).status_code == 400
    assert apply(hub, "sideways", work=False).status_code == 400
    assert len(links(hub)) == 1 and {r.state for r in rows(hub).values()} == {"open", "skipped"}


def test_the_settings_page_offers_the_match_until_one_is_approved(hub):
    hub.settings()
    hub.crm.crm.add_company(name="Initech", **{TAX: "1"})
    hub.books.add_contact("Initech Pty Ltd", TaxNumber="1")
    ins = installation_id(hub)

    def settings_page() -> str:
        return requests.get(f"{hub.url}/ui/settings/{ins}", params={"t": token(hub)},
                            timeout=20).text

    assert "match your existing HubSpot companies" in settings_page()
    start(hub)
    apply(hub, "approve_all")
    text = settings_page()
    assert "match your existing HubSpot companies" not in text
    assert "/contact-match?t=" in text  # still there on demand


# --- Pipedrive -------------------------------------------------------------------------------

def test_pipedrive_matches_links_and_creates_both_ways(pd):
    tax_field = pd.crm.api.add_org_field("ABN")
    pd.settings(tax_property=tax_field)
    initech = pd.crm.api.add_org("Initech", custom_fields={tax_field: "51 824 753 556"})
    umbrella = pd.crm.api.add_org("Umbrella")
    contact = pd.books.add_contact("Initech Pty Ltd", TaxNumber="51824753556")
    pd.books.add_contact("Hooli")
    pd.crm.api.clear_calls()
    pd.xero.clear_api_calls()

    start(pd)

    found = rows(pd)
    assert {n: r.kind for n, r in found.items()} == {
        "Initech": "proposed", "Umbrella": "crm_only", "Hooli": "xero_only"}
    assert writes(pd.xero.api_calls) == []
    assert [c for c in pd.crm.api_calls if c.method != "GET"] == []

    apply(pd, "approve_all", {found["Umbrella"].id: "create_xero", found["Hooli"].id: "create_crm"})

    made = links(pd)
    assert made[str(initech)] == contact.contact_id
    umbrella_contact = next(c for c in pd.books.contact_by_id.values() if c.name == "Umbrella")
    assert made[str(umbrella)] == umbrella_contact.contact_id
    hooli_org = rows(pd)["Hooli"].crm_id
    assert pd.crm.api.org(int(hooli_org)).name == "Hooli"
    assert made[hooli_org] == rows(pd)["Hooli"].xero_id
    assert pd.crm.count_api_calls("POST", "/organizations") == 1


def test_a_create_xero_cannot_take_fails_its_row_with_the_reason_and_others_go_ahead(hub):
    hub.settings()
    long_name = "L" * 300
    hub.crm.crm.add_company(name=long_name)
    hub.crm.crm.add_company(name="Short Ltd")
    start(hub)
    found = rows(hub)

    apply(hub, "apply", {found[long_name[:255]].id: "create_xero",
                         found["Short Ltd"].id: "create_xero"})

    after = rows(hub)
    failed = after[long_name[:255]]
    assert failed.state == "failed"
    assert failed.error == "the name is 300 characters; Xero allows 255"
    assert after["Short Ltd"].state == "done"
    assert [c.name for c in hub.books.contact_by_id.values()] == ["Short Ltd"]
    assert "Xero allows 255" in page(hub).text  # shown on the screen, never silent
    (refused,) = [e for e in audits(hub, "contact_match_created") if e.outcome == "failed"]
    assert refused.detail["error"] == failed.error
