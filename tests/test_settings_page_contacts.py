"""The settings page's Contacts section (issue #15 section 4), over real HTTP against the
loopback fakes: the mapping table with each field's direction and conflict rule, the Xero
contact roles and groups, saved with the rest of the page in one transaction; a choice that
cannot be a rule (Website from the CRM to Xero: Xero's spec marks Contact.Website read-only)
is refused beside its field and nothing at all is saved."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, ContactSyncSettings, Installation, InstallationSettings
from sandbox.xero.groups import add_group
from tests.test_settings_page import form_of, hubspot_admin, page, post, snapshot  # noqa: F401

# A row's inputs after its hidden contact_field: the CRM field, the direction, who wins.
PROPERTY, DIRECTION, CONFLICT = 1, 2, 3


def contact_row(form, name, *, prop=None, direction=None, conflict=None):
    for offset, value in ((PROPERTY, prop), (DIRECTION, direction), (CONFLICT, conflict)):
        if value is not None:
            form.set_after(("contact_field", name), offset, value)
    return form


def test_the_contacts_section_lists_every_field_with_its_default_rule(hubspot_admin):
    ctx = hubspot_admin
    response = page(ctx)
    form = form_of(ctx, response)

    assert "Contacts both ways" in response.text
    assert ["section", "contacts"] in form.fields and ["contact_sync", "on"] not in form.fields
    assert form.values("contact_field") == [
        "name", "email", "phone", "mobile", "street_address", "billing_address", "website",
        "tax_number", "contact_persons", "payment_terms", "currency", "account_number"]
    rows = dict(zip(form.values("contact_field"),
                    zip(form.values("contact_property"), form.values("contact_direction"),
                        form.values("contact_conflict"))))
    assert rows["name"] == ("name", "both", "crm")
    assert rows["website"] == ("website", "xero_to_crm", "crm")  # read-only in Xero
    assert rows["payment_terms"] == ("", "both", "xero") and rows["currency"][2] == "xero"
    assert rows["email"] == ("", "both", "crm")  # HubSpot has no standard company email
    assert form.values("contact_roles") == ["customer", "unassigned"]
    assert "(Xero cannot take it)" in response.text


def test_contact_choices_are_saved_with_the_rest_in_one_go_and_audited(hubspot_admin):
    ctx = hubspot_admin
    app, installation_id = ctx["app"], ctx["installation_id"]
    group = add_group(ctx["xero"].accounting(ctx["tenant"]), "Customers")  # made in Xero
    form = form_of(ctx, page(ctx, ctx["settings_url"] + "&refresh=1"))
    form.check("draft_first").check("contact_sync", "on")
    contact_row(form, "name", conflict="ask")
    contact_row(form, "email", prop="billing_email", direction="xero_to_crm")
    contact_row(form, "currency", direction="off")
    form.check("contact_roles", "unassigned", on=False)
    form.check("contact_groups", group)

    saved = post(ctx, form)

    assert saved.status_code == 200 and "Saved." in saved.text
    with app.app_context():
        row = db.session.get(ContactSyncSettings, installation_id)
        assert row.enabled is True
        assert row.fields == {"name": {"conflict": "ask"},
                              "email": {"direction": "xero_to_crm", "crm_property": "billing_email"},
                              "currency": {"direction": "off"}}
        assert row.xero_roles == ["customer"]
        assert row.contact_groups == [group]
        assert db.session.get(InstallationSettings, installation_id).draft_first is True
        (event,) = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "settings_changed")).all()
        changes = event.detail["changes"]
        assert changes["draft_first"] == {"from": False, "to": True}
        assert changes["contacts"]["enabled"] == {"from": False, "to": True}
        assert changes["contacts"]["roles"] == {"from": ["customer", "unassigned"], "to": ["customer"]}
    # The page shows what was saved; saving it unchanged changes nothing.
    again = form_of(ctx, saved)
    rows = dict(zip(again.values("contact_field"),
                    zip(again.values("contact_property"), again.values("contact_direction"),
                        again.values("contact_conflict"))))
    assert rows["name"] == ("name", "both", "ask")
    assert rows["email"] == ("billing_email", "xero_to_crm", "crm")
    assert rows["currency"][1] == "off"
    assert ["contact_sync", "on"] in again.fields and again.values("contact_roles") == ["customer"]
    assert again.values("contact_groups") == [group]
    before = snapshot(app)
    unchanged = post(ctx, again)
    assert "Nothing had changed" in unchanged.text and snapshot(app) == before


def test_website_from_the_crm_to_xero_is_refused_beside_its_field_and_nothing_is_saved(hubspot_admin):
    ctx = hubspot_admin
    app, installation_id = ctx["app"], ctx["installation_id"]
    form = form_of(ctx, page(ctx)).check("draft_first").check("contact_sync", "on")
    contact_row(form, "website", direction="crm_to_xero")
    before = snapshot(app)

    refused = post(ctx, form)

    assert refused.status_code == 400
    assert "nothing was saved" in refused.text
    assert 'id="error-contact:website"' in refused.text
    assert "Xero&#39;s API cannot write Website" in refused.text
    assert 'href="#error-contact:website"' in refused.text  # linked from the summary
    assert snapshot(app) == before
    with app.app_context():
        assert db.session.get(ContactSyncSettings, installation_id) is None
        assert db.session.get(InstallationSettings, installation_id).draft_first is False


def test_no_contact_roles_and_a_foreign_field_are_refused(hubspot_admin):
    ctx = hubspot_admin
    form = form_of(ctx, page(ctx))
    for role in ("customer", "unassigned"):
        form.check("contact_roles", role, on=False)
    form.add("contact_field", "fax").add("contact_property", "fax")
    form.add("contact_direction", "both").add("contact_conflict", "crm")

    refused = post(ctx, form)

    assert refused.status_code == 400
    assert 'id="error-contact_roles"' in refused.text and "at least one kind" in refused.text
    assert 'id="error-contacts"' in refused.text and "does not sync" in refused.text
    with app_ctx(ctx):
        assert db.session.get(ContactSyncSettings, ctx["installation_id"]) is None


def app_ctx(ctx):
    return ctx["app"].app_context()


def test_persons_cannot_be_turned_on_for_a_hubspot_grant_without_contacts_write(hubspot_admin):
    """An installation granted before person sync (its token's scopes have no
    crm.objects.contacts.write): HubSpot adds scopes only when the app is installed again
    (developers.hubspot.com/docs/apps/developer-platform/build-apps/authentication/scopes), so
    the page says so and refuses to turn person sync on; nothing is saved. Once the grant has
    the scope, the same choice is saved."""
    ctx = hubspot_admin
    app, installation_id = ctx["app"], ctx["installation_id"]
    with app.app_context():
        installation = db.session.get(Installation, installation_id)
        granted = installation.scopes
        assert "crm.objects.contacts.write" in granted.split()  # a fresh install has it
        installation.scopes = " ".join(s for s in granted.split()
                                       if s != "crm.objects.contacts.write")
        db.session.commit()
    shown = page(ctx)
    assert "needs the crm.objects.contacts.write permission" in shown.text
    form = form_of(ctx, shown).check("contact_sync", "on").check("contact_persons", "on")
    before = snapshot(app)

    refused = post(ctx, form)

    assert refused.status_code == 400
    assert "Paydeck may not update HubSpot contacts yet" in refused.text
    assert snapshot(app) == before
    with app.app_context():
        db.session.get(Installation, installation_id).scopes = granted
        db.session.commit()
    form = form_of(ctx, page(ctx)).check("contact_sync", "on").check("contact_persons", "on")
    assert "needs the crm.objects.contacts.write" not in page(ctx).text
    saved = post(ctx, form)
    assert saved.status_code == 200 and "Saved." in saved.text
    with app.app_context():
        assert db.session.get(ContactSyncSettings, installation_id).persons is True
