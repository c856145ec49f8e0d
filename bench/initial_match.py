"""Benchmark: the initial contact match (issue #15 section 2) at 10,000 CRM companies and
10,000 Xero contacts: the vendor calls it costs, against Xero's limits.

    .venv/bin/python -m bench.initial_match [--companies 10000] [--contacts 10000]
                                            [--matching 7000]

Paydeck runs on loopback beside the fake HubSpot and the fake Xero, installed and connected
through the real OAuth flows (bench.contact_latency's stack), with contact sync on. The fakes
are seeded directly: `--matching` companies have a Xero contact of the same email, the other
companies exist only in the CRM, the other contacts only in Xero. Then, as the admin would:

1. read and match (app.contact_sync.initial.read.read_run, the job the screen starts);
2. approve every proposed link, "create in Xero" for every CRM-only company and "create in
   the CRM" for every Xero-only contact, and apply (app.contact_sync.initial.apply.apply_run).

The jobs are called in this process, one after the other. Each time a job stops because
Xero's minute window is spent (it keeps CONTACT_SYNC_RESERVE calls of each minute for
invoicing), the bench opens a fresh minute in both Xero's count and Paydeck's and counts the
minute, so "Xero minutes" is how many wall-clock minutes the real run needs at least. Calls
are counted by the fakes' own call logs. Runs on a temporary SQLite file and an embedded Redis.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.contact_sync.initial.apply import apply_run
from app.contact_sync.initial.read import read_run, start_run
from app.contact_sync.initial.rows import approve, kind_counts, save_choices
from app.extensions import db
from app.models import (
    ContactLink,
    ContactMatchRow,
    ContactMatchRun,
    ContactSyncSettings,
    Installation,
    InstallationSettings,
)
from app.redis_conn import EmbeddedRedis
from bench.contact_latency import _fresh_minute, _Stack
from bench.contact_latency_hubspot import HubSpotSide
from sandbox.hubspot import FakeHubSpot
from sandbox.xero import FakeXero

XERO_DAY = 5_000  # developer.xero.com/documentation/guides/oauth2/limits: 5,000 calls a day
EMAIL = "billing_email"  # the company property the admin maps Xero's email to
MAX_MINUTES = 600  # a run that needs more than this many Xero minutes is a failure here


def main(argv: Sequence[str] | None = None) -> None:
    args = _args(argv)
    with tempfile.TemporaryDirectory(prefix="paydeck-match-") as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis", persist=False)
        try:
            _run(Path(tmp), redis_server.start(), args)
        finally:
            redis_server.stop()


def _args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--companies", type=int, default=10_000)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--matching", type=int, default=7_000)
    args = parser.parse_args(argv)
    if args.matching > min(args.companies, args.contacts):
        parser.error("--matching cannot exceed --companies or --contacts")
    return args


def _run(tmp: Path, redis_url: str, args: argparse.Namespace) -> None:
    side, xero = HubSpotSide(), FakeXero()
    hubspot = side.fake
    tenant = xero.add_tenant("Bench Pty Ltd")
    stack = _Stack(tmp, redis_url, side, xero)
    try:
        seeded = time.perf_counter()
        _seed(stack, hubspot, xero, tenant, args)
        seeded = time.perf_counter() - seeded
        _fresh_minute(stack, xero)
        with stack.app.app_context():
            installation = db.session.scalars(select(Installation)).one()
            run_id = start_run(installation, "bench").id
        read = _phase(stack, hubspot, xero, lambda: _read(run_id))
        with stack.app.app_context():
            run = db.session.get(ContactMatchRun, run_id)
            kinds = kind_counts(run)
            _choose(run)
        _fresh_minute(stack, xero)
        applied = _phase(stack, hubspot, xero, lambda: _apply(run_id))
        with stack.app.app_context():
            links = db.session.scalar(select(func.count()).select_from(ContactLink))
            states = dict(db.session.execute(
                select(ContactMatchRow.state, func.count()).where(ContactMatchRow.run_id == run_id)
                .group_by(ContactMatchRow.state)).all())
        _report(args, seeded, kinds, read, applied, links, states,
                len(xero.accounting(tenant).contact_by_id), len(hubspot.crm.objects("companies")))
    finally:
        stack.close()


def _seed(stack: _Stack, hubspot: FakeHubSpot, xero: FakeXero, tenant: str,
          args: argparse.Namespace) -> None:
    """The CRM's companies and Xero's contacts, written into the fakes directly."""
    hubspot.crm.add_property("companies", EMAIL, "Billing email")
    books = xero.accounting(tenant)
    for n in range(args.companies):
        email = f"ap{n}@customer{n}.test" if n < args.matching else f"crm{n}@only.test"
        hubspot.crm.add_company(name=f"Customer {n:05}", **{EMAIL: email})
    for n in range(args.contacts):
        if n < args.matching:  # the same customer, as finance typed it in Xero
            books.add_contact(f"Customer {n:05} Pty Ltd", EmailAddress=f"AP{n}@customer{n}.test")
        else:
            books.add_contact(f"Xero Only {n:05}", EmailAddress=f"xero{n}@only.test")
    with stack.app.app_context():
        installation = db.session.scalars(select(Installation)).one()
        db.session.add(ContactSyncSettings(installation_id=installation.id, enabled=True,
                                           fields={"email": {"crm_property": EMAIL}}))
        db.session.get(InstallationSettings, installation.id).tax_number_property = None
        db.session.commit()


def _read(run_id: int) -> bool:
    """One go of the reading job; whether the run is past reading."""
    return read_run(run_id) != "reading"


def _apply(run_id: int) -> bool:
    apply_run(run_id)
    db.session.remove()
    run = db.session.get(ContactMatchRun, run_id)
    return run is not None and run.status != "applying"


def _choose(run: ContactMatchRun) -> None:
    """What the admin picks on the screen: every proposal, and create the rest both ways."""
    rows = db.session.execute(select(ContactMatchRow.id, ContactMatchRow.kind).where(
        ContactMatchRow.run_id == run.id, ContactMatchRow.state == "open")).all()
    verbs = {"crm_only": "create_xero", "xero_only": "create_crm"}
    chosen = save_choices(run, {row_id: verbs[kind] for row_id, kind in rows if kind in verbs})
    approve(run, "bench", chosen, proposed=True)
    db.session.commit()


def _phase(stack: _Stack, hubspot: FakeHubSpot, xero: FakeXero, step: Any) -> dict[str, Any]:
    """Run `step` until it says done, a fresh Xero minute each time it stopped for the quota."""
    xero_before, crm_before = xero.count_calls(), len(hubspot.crm_calls)
    started, minutes = time.perf_counter(), 1
    while True:
        with stack.app.app_context():
            done = step()
        if done:
            break
        minutes += 1
        if minutes > MAX_MINUTES:
            raise RuntimeError(f"not done within {MAX_MINUTES} Xero minutes")
        _fresh_minute(stack, xero)
    return {"xero": xero.count_calls() - xero_before,
            "crm": len(hubspot.crm_calls) - crm_before,
            "minutes": minutes, "seconds": time.perf_counter() - started}


def _report(args: argparse.Namespace, seeded: float, kinds: dict[str, int], read: dict[str, Any],
            applied: dict[str, Any], links: int, states: dict[str, int], contacts: int,
            companies: int) -> None:
    total = read["xero"] + applied["xero"]
    print(f"initial contact match: {args.companies:,} HubSpot companies, {args.contacts:,} Xero "
          f"contacts ({args.matching:,} the same customer by email), seeded in {seeded:.1f} s")
    print(f"  rows                 {', '.join(f'{k} {v:,}' for k, v in kinds.items() if v)}")
    for name, phase in (("read + match", read), ("apply", applied)):
        print(f"  {name:<20} Xero calls {phase['xero']:>5,}, HubSpot calls {phase['crm']:>5,}, "
              f"{phase['minutes']} Xero minute(s), {phase['seconds']:.1f} s here")
    print(f"  Xero calls in all    {total:,} = {100 * total / XERO_DAY:.1f}% of the day's "
          f"{XERO_DAY:,} (left for invoicing: {XERO_DAY - total:,})")
    print(f"  afterwards           {links:,} links; rows {dict(sorted(states.items()))}; "
          f"{contacts:,} Xero contacts, {companies:,} HubSpot companies")


if __name__ == "__main__":
    main()
