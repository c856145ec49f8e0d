"""The initial contact match's review screen (issue #15 part 2), linked from the settings
page's Contacts section.

Who may call it: exactly who may open the settings page - the installing admin (HubSpot) or
a Pipedrive admin - through the same `settings` page token (app.ui_auth), which names one
installation; a token for another installation is refused. Every POST carries its own
single-use action token (`match_start`, `match_apply`). Nothing here writes to a vendor: a
run reads; approving queues rows for the background apply job.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request, url_for

from app.contact_sync.initial import apply as applying
from app.contact_sync.initial.match import KINDS
from app.contact_sync.initial.read import MatchUnavailable, start_run
from app.contact_sync.initial.rows import (
    CHOICES,
    MAX_TEST_BATCH,
    ChoiceError,
    approve,
    batch_rows,
    kind_counts,
    latest_run,
    page_of,
    progress,
    save_choices,
)
from app.crm_names import crm_name
from app.extensions import db
from app.models import ContactMatchRun, Installation
from app.runtime import get_settings
from app.ui_auth import FORM_TTL, View, issue_action_token, issue_view_token, read_action_token
from app.ui_auth import read_view_token
from app.views.common import crm_frame_headers, message_page, page_installation

bp = Blueprint("contact_match", __name__)
bp.after_request(crm_frame_headers)
_BASE = "/ui/settings/<int:installation_id>/contact-match"
MAX_CHOICES = 200  # rows one form may answer (a page shows 50)


@bp.get(_BASE)
def match_page(installation_id: int) -> Response:
    view = read_view_token(request.args.get("t"), "settings", str(installation_id))
    installation = page_installation(view, installation_id)
    run = latest_run(installation.id)
    kind = request.args.get("kind") or ""
    if kind and kind not in KINDS:
        abort(400, f"kind: one of {', '.join(KINDS)}")
    page = _number(request.args.get("page"), "page", 1, 100_000)
    batch = _number(request.args.get("batch"), "batch", 0, 100_000) if request.args.get("batch") else 0
    rows, more = page_of(run, kind or None, page) if run else ([], False)
    token = issue_view_token(view, ttl=FORM_TTL)
    return _page(view, installation, run, token, kind=kind, page=page, rows=rows, more=more,
                 batch=batch, message=request.args.get("m", ""))


@bp.get(f"{_BASE}/status")
def match_status(installation_id: int) -> Response:
    """The progress bar's poll: the latest run's state and counts (no customer data)."""
    view = read_view_token(request.args.get("t"), "settings", str(installation_id))
    installation = page_installation(view, installation_id)
    run = latest_run(installation.id)
    if run is None:
        return jsonify({"status": "none"})
    done = progress(run)
    return jsonify({"run": run.id, "status": run.status, "kinds": kind_counts(run),
                    "read": {"crm_done": run.crm_done, "xero_done": run.xero_done,
                             "xero_pages": run.xero_page - 1},
                    "apply": {"queued": done.queued, "sending": done.sending, "done": done.done,
                              "failed": done.failed, "total": done.total}})


@bp.post(f"{_BASE}/start")
def match_start(installation_id: int) -> Response:
    view = read_action_token(request.form.get("a"), "match_start", "settings",
                             str(installation_id))
    installation = page_installation(view, installation_id)
    try:
        start_run(installation, view.user)
    except MatchUnavailable as exc:
        return redirect(_url(view, m=str(exc)))
    return redirect(_url(view, m="Reading every company and Xero contact; nothing is written "
                                 "until you approve."))


@bp.post(f"{_BASE}/apply")
def match_apply(installation_id: int) -> Response:
    view = read_action_token(request.form.get("a"), "match_apply", "settings",
                             str(installation_id))
    installation = page_installation(view, installation_id)
    run = db.session.get(ContactMatchRun, _number(request.form.get("run"), "run", 1, 2**31))
    if run is None or run.installation_id != installation.id:
        abort(404)
    if run.status not in ("ready", "applying"):
        return redirect(_url(view, m="This match is not ready for approval (it is "
                                     f"{run.status})."))
    mode = request.form.get("mode", "")
    if mode not in ("approve_all", "apply", "test"):
        abort(400, "mode: approve_all, apply or test")
    limit = _number(request.form.get("n") or "5", "n", 1, MAX_TEST_BATCH) if mode == "test" else None
    try:
        chosen = save_choices(run, _choices())
    except ChoiceError as exc:
        db.session.rollback()
        return message_page("That choice cannot be applied", str(exc), 400,
                            back_url=_url(view))
    batch = approve(run, view.user, chosen, proposed=mode == "approve_all", limit=limit)
    db.session.commit()
    if not batch:
        return redirect(_url(view, m="Nothing to apply: choose what to do with some rows first."))
    applying.wake(run.id)
    words = {"test": f"Applying a test batch of {limit}: check its results below before "
                     "approving the rest.",
             "approve_all": "Applying every proposed link and your choices.",
             "apply": "Applying your choices."}[mode]
    return redirect(_url(view, m=words, batch=str(batch)))


def _choices() -> dict[int, str]:
    choices: dict[int, str] = {}
    for key, value in request.form.items():
        if not key.startswith("c") or not key[1:].isdigit():
            continue
        if len(choices) >= MAX_CHOICES:
            abort(413, f"at most {MAX_CHOICES} rows a form")
        verb = value.partition(":")[0]
        if value and verb not in {c for cs in CHOICES.values() for c in cs}:
            abort(400, f"{key}: unknown choice")
        if len(value) > 80:
            abort(400, f"{key}: too long")
        choices[int(key[1:])] = value
    return choices


def _number(value: str | None, name: str, low: int, high: int) -> int:
    if value in (None, ""):
        return low
    if not value.isdigit() or not low <= int(value) <= high:
        abort(400, f"{name}: a whole number from {low} to {high}")
    return int(value)


def _url(view: View, **args: str) -> str:
    return url_for("contact_match.match_page", installation_id=view.installation_id,
                   t=issue_view_token(view, ttl=FORM_TTL), **args)


def record_urls(installation: Installation) -> dict[str, str]:
    """Where a person opens a created or linked record (patterns; Unverified: Xero's
    /Contacts/View/<ContactID> path, as go.xero.com shows contacts)."""
    crm = (f"https://app.hubspot.com/contacts/{installation.account_id}/company/{{}}"
           if installation.crm.value == "hubspot"
           else f"{installation.api_domain or ''}/organization/{{}}")
    return {"crm": crm, "xero": f"{get_settings().xero_app_base}/Contacts/View/{{}}"}


def _page(view: View, installation: Installation, run: ContactMatchRun | None, token: str,
          **shown: object) -> Response:
    body = render_template(
        "contact_match.html", installation=installation, crm_name=crm_name(installation),
        run=run, token=token, kinds=KINDS, choices=CHOICES, max_test=MAX_TEST_BATCH,
        counts=kind_counts(run) if run else {}, progress=progress(run) if run else None,
        batch_rows=batch_rows(run, int(shown["batch"])) if run and shown["batch"] else [],
        urls=record_urls(installation),
        start_token=issue_action_token(view, "match_start", ttl=FORM_TTL),
        apply_token=issue_action_token(view, "match_apply", ttl=FORM_TTL),
        settings_url=url_for("settings.settings_page", installation_id=installation.id,
                             t=token),
        status_url=url_for("contact_match.match_status", installation_id=installation.id,
                           t=token), **shown)
    return Response(body, mimetype="text/html")
