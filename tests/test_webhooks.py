"""CRM webhook endpoints: verification, parsing, de-duplication, and every bad-input case."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
from rq import Queue

from app.extensions import db
from app.queueing import QUEUE
from app.models import (
    CrmKind,
    DealSyncRequest,
    Installation,
    InstallationStatus,
    StageAction,
    StageRule,
    WebhookReceipt,
)
from app.redis_conn import get_redis
from crm_adapters.hubspot import sign_v3
from tests.helpers import count

SECRET = "hubspot-client-secret"
APP_ID = "3344556"


@pytest.fixture
def hub(app_factory):
    flask_app = app_factory.create(hubspot_client_secret=SECRET, hubspot_app_id=APP_ID)
    with flask_app.app_context():
        installation = Installation(crm=CrmKind.HUBSPOT, account_id="4455667")
        piped = Installation(crm=CrmKind.PIPEDRIVE, account_id="7788990", webhook_user="hookuser",
                             webhook_password="hook-password")
        gone = Installation(crm=CrmKind.HUBSPOT, account_id="999", status=InstallationStatus.UNINSTALLED)
        db.session.add_all([installation, piped, gone])
        db.session.flush()
        db.session.add_all([
            StageRule(installation_id=installation.id, pipeline_id="default", stage_id="closedwon",
                      action=StageAction.AUTHORISE),
            StageRule(installation_id=installation.id, pipeline_id="default",
                      stage_id="contractsent", action=StageAction.DRAFT),
            StageRule(installation_id=piped.id, pipeline_id="1", stage_id="5", action=StageAction.AUTHORISE),
            StageRule(installation_id=gone.id, pipeline_id="default", stage_id="closedwon",
                      action=StageAction.AUTHORISE),
        ])
        db.session.commit()
        yield flask_app, installation.id, piped.id


def event(deal_id="1", stage="closedwon", portal=4455667, **kw):
    return {"objectId": int(deal_id), "propertyName": "dealstage", "propertyValue": stage,
            "changeSource": "CRM_UI", "sourceId": "userId:1", "eventId": kw.pop("eventId", uuid.uuid4().int % 10**9),
            "subscriptionId": 1, "portalId": portal, "appId": int(APP_ID),
            "occurredAt": int(time.time() * 1000), "subscriptionType": "deal.propertyChange",
            "attemptNumber": 0, **kw}


def post_hubspot(client, body, *, secret=SECRET, timestamp=None, url="http://paydeck.invalid/webhooks/hubspot",
                 path="/webhooks/hubspot"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ts = str(timestamp if timestamp is not None else int(time.time() * 1000))
    return client.post(path, data=raw, content_type="application/json", headers={
        "X-HubSpot-Signature-v3": sign_v3(secret, "POST", url, raw, ts),
        "X-HubSpot-Request-Timestamp": ts, "X-HubSpot-Signature-Version": "v3"})


def queued_jobs(flask_app):
    with flask_app.app_context():
        return Queue(QUEUE, connection=get_redis()).count


def test_a_signed_batch_records_and_enqueues_stage_changes_with_rules(hub):
    flask_app, installation_id, _ = hub
    other_property = {**event("9"), "propertyName": "amount", "propertyValue": "10"}
    body = [event("1"), event("2", "contractsent"), event("3", "appointmentscheduled"), other_property]

    response = post_hubspot(flask_app.test_client(), body)

    assert response.status_code == 200
    assert response.get_json() == {"enqueued": 2, "duplicates": 0, "no_rule": 1, "ignored": 1,
                                   "own_change": 0, "unknown_account": 0, "contact_changes": 0}
    with flask_app.app_context():
        requests = {r.deal_id: r.action for r in db.session.scalars(db.select(DealSyncRequest))}
    assert requests == {"1": StageAction.AUTHORISE, "2": StageAction.DRAFT}
    assert queued_jobs(flask_app) == 1  # one job for the installation, not one per event


def test_repeated_events_are_dropped(hub):
    flask_app, _, _ = hub
    body = [event("1", eventId=42), event("2", eventId=43)]
    client = flask_app.test_client()
    post_hubspot(client, body)

    again = post_hubspot(client, body)

    assert again.status_code == 200
    assert again.get_json()["duplicates"] == 2 and again.get_json()["enqueued"] == 0
    assert count(flask_app, WebhookReceipt) == 2


def test_a_batch_of_100_is_one_insert_and_one_job(hub):
    flask_app, _, _ = hub

    response = post_hubspot(flask_app.test_client(), [event(str(n)) for n in range(1, 101)])

    assert response.get_json()["enqueued"] == 100
    assert count(flask_app, DealSyncRequest) == 100
    assert queued_jobs(flask_app) == 1


@pytest.mark.parametrize("tamper", ["secret", "stale", "future", "url", "missing"])
def test_forged_or_stale_signatures_are_401_and_record_nothing(hub, tamper):
    flask_app, _, _ = hub
    client = flask_app.test_client()
    now = int(time.time() * 1000)
    if tamper == "missing":
        response = client.post("/webhooks/hubspot", json=[event()])
    else:
        response = post_hubspot(
            client, [event()], secret="guess" if tamper == "secret" else SECRET,
            timestamp={"stale": now - 301_000, "future": now + 301_000}.get(tamper, now),
            url="http://paydeck.invalid/webhooks/hubspot?x=1" if tamper == "url"
            else "http://paydeck.invalid/webhooks/hubspot")

    assert response.status_code == 401
    assert count(flask_app, WebhookReceipt) == 0 and count(flask_app, DealSyncRequest) == 0
    assert queued_jobs(flask_app) == 0


@pytest.mark.parametrize("body", [b"{not json", b'{"objectId": 1}', b'[1, 2]'])
def test_malformed_payloads_are_400(hub, body):
    flask_app, _, _ = hub

    response = post_hubspot(flask_app.test_client(), body)

    assert response.status_code == 400
    assert count(flask_app, DealSyncRequest) == 0


def test_unknown_or_uninstalled_portals_are_answered_but_not_enqueued(hub):
    flask_app, _, _ = hub

    response = post_hubspot(flask_app.test_client(), [event(portal=12345), event(portal=999)])

    assert response.status_code == 200
    assert response.get_json()["unknown_account"] == 2
    assert count(flask_app, DealSyncRequest) == 0 and queued_jobs(flask_app) == 0


def test_paydecks_own_changes_are_ignored(hub):
    flask_app, _, _ = hub
    own = event(changeSource="INTEGRATION", sourceId=APP_ID)

    response = post_hubspot(flask_app.test_client(), [own])

    assert response.get_json()["own_change"] == 1
    assert count(flask_app, DealSyncRequest) == 0


# --- Pipedrive ----------------------------------------------------------------------------------

def pipedrive_body(deal_id="77", stage=5, previous_stage=4, company="7788990", event_id=None):
    return {"meta": {"action": "change", "entity": "deal", "entity_id": deal_id,
                     "company_id": company, "user_id": "1", "id": event_id or str(uuid.uuid4()),
                     "timestamp": "2026-11-21T10:00:00Z", "correlation_id": str(uuid.uuid4()),
                     "change_source": "app", "attempt": 1, "version": "2.0"},
            "data": {"id": int(deal_id), "stage_id": stage, "title": "Deal"},
            "previous": {"stage_id": previous_stage} if previous_stage is not None else {"title": "Old"}}


def post_pipedrive(client, installation_id, body, user="hookuser", password="hook-password"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return client.post(f"/webhooks/pipedrive/{installation_id}", data=raw,
                       content_type="application/json", headers={"Authorization": f"Basic {auth}"})


def test_pipedrive_stage_change_is_enqueued_once(hub):
    flask_app, _, piped_id = hub
    body = pipedrive_body(event_id="evt-1")
    client = flask_app.test_client()

    first = post_pipedrive(client, piped_id, body)
    retry = post_pipedrive(client, piped_id, body)

    assert first.status_code == retry.status_code == 200
    assert first.get_json()["enqueued"] == 1 and retry.get_json()["duplicates"] == 1
    with flask_app.app_context():
        assert db.session.scalars(db.select(DealSyncRequest.deal_id)).all() == ["77"]


def test_pipedrive_wrong_basic_auth_is_401(hub):
    flask_app, _, piped_id = hub

    response = post_pipedrive(flask_app.test_client(), piped_id, pipedrive_body(), password="nope")

    assert response.status_code == 401
    assert count(flask_app, WebhookReceipt) == 0 and count(flask_app, DealSyncRequest) == 0


def test_pipedrive_changes_without_a_stage_change_are_ignored(hub):
    flask_app, _, piped_id = hub

    response = post_pipedrive(flask_app.test_client(), piped_id, pipedrive_body(previous_stage=None))

    assert response.get_json()["ignored"] == 1
    assert count(flask_app, DealSyncRequest) == 0


def test_pipedrive_malformed_body_is_400_and_unknown_installation_answers_like_a_bad_password(hub):
    flask_app, _, piped_id = hub
    client = flask_app.test_client()

    assert post_pipedrive(client, piped_id, b"[]").status_code == 400
    assert post_pipedrive(client, piped_id, b"nope").status_code == 400
    # Issue #12: an unknown id and an active id with a wrong password answer alike, so
    # installation ids cannot be enumerated.
    unknown = post_pipedrive(client, 424242, pipedrive_body())
    wrong = post_pipedrive(client, piped_id, pipedrive_body(), password="nope")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.get_data() == wrong.get_data()
    other_company = post_pipedrive(client, piped_id, pipedrive_body(company="1"))
    assert other_company.get_json()["unknown_account"] == 1
    assert count(flask_app, DealSyncRequest) == 0
