"""bench/contact_latency still runs end to end for each CRM (a small run: 2 changes each way,
one forking worker): the bench drives the fakes and Paydeck through their real flows, so a
change to either that the bench no longer fits fails here rather than when figures are due."""

from __future__ import annotations

import re

import pytest

from bench import contact_latency


@pytest.mark.parametrize("crm, vendor, record", [("hubspot", "HubSpot", "company"),
                                                 ("pipedrive", "Pipedrive", "organization")])
def test_the_contact_latency_bench_runs_and_every_change_arrives(crm, vendor, record, capsys):
    contact_latency.main(["--crm", crm, "--changes", "2", "--workers", "1"])

    out = capsys.readouterr().out
    for label in (f"{vendor} {record} -> Xero contact", f"Xero contact -> {vendor} {record}"):
        assert re.search(rf"{label}: p50 \d+ ms, p95 \d+ ms, max \d+ ms .*; Xero calls "
                         rf"[\d.]+ per change, {vendor} calls [\d.]+ per change", out), out
    assert "2 changes whose webhooks were lost: 2 caught in one pass" in out, out


def test_the_initial_match_bench_runs_and_links_every_row(capsys):
    # bench/initial_match reuses this bench's stack: a small run keeps the two in step.
    from bench import initial_match

    initial_match.main(["--companies", "6", "--contacts", "5", "--matching", "3"])

    out = capsys.readouterr().out
    assert "rows                 proposed 3, crm_only 3, xero_only 2" in out, out
    assert "afterwards           8 links; rows {'done': 8}" in out, out
