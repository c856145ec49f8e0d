"""What one batch works on: a `RunContext` (the installation, its Xero client, the counts)
and one `DealWork` per deal. An item sent to review, left unchanged or left for later is
`done`; every later step skips it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from app.connections import xero_client
from app.extensions import db
from app.models import (
    DealSyncRequest,
    Installation,
    InstallationSettings,
    InvoiceLink,
    ReviewItem,
    ReviewReason,
    StageAction,
    XeroConnection,
)
from domain.crm import InvoiceFields
from domain.deals import Deal
from domain.ports import CrmAdapter
from xero.build import InvoiceDraft
from xero.client import XeroClient
from xero.contacts import Customer
from xero.errors import BatchMismatch, standard_backoff
from xero.reference import PaymentTerms, ReferenceData

# A deal Xero's batch answers keep leaving out goes to review after this many tries.
MAX_MISMATCH_TRIES = 6


@dataclass
class DealWork:
    """One deal of the batch, as the steps learn about it."""

    request: DealSyncRequest
    # Read once, before any commit: the row itself may change while the run works.
    action: StageAction = StageAction.NONE
    source: str = ""
    version: int = 0
    deal: Deal | None = None
    link: InvoiceLink | None = None
    customer: Customer | None = None
    contact_id: str | None = None
    draft: InvoiceDraft | None = None
    update_of: str | None = None  # invoice id of the draft this updates
    email_only: bool = False  # approved already; only the email is still owed
    contact_terms: PaymentTerms | None = None  # the Xero contact's own sales terms
    done: bool = False
    retry_in: float | None = None  # this deal alone waits and runs again (BatchMismatch)
    audit: dict[str, object] = field(default_factory=dict)

    @classmethod
    def of(cls, request: DealSyncRequest) -> DealWork:
        return cls(request, action=request.action, source=request.source, version=request.version)


def _counts() -> dict[str, int]:
    return {"created": 0, "updated": 0, "recovered": 0, "review": 0, "unchanged": 0, "retry": 0}


@dataclass
class RunContext:
    """One batch of deals for one installation, passed through every step."""

    installation: Installation
    connection: XeroConnection
    xero: XeroClient
    items: list[DealWork]
    settings: InstallationSettings
    source: CrmAdapter | None = None  # the CRM's adapter, once fetch_deals found it
    ref: ReferenceData | None = None  # Xero's reference data, once a deal needs it
    fields: list[InvoiceFields] = field(default_factory=list)  # to write onto the deals
    linked: set[tuple[str, str]] = field(default_factory=set)  # contacts linked this run
    counts: dict[str, int] = field(default_factory=_counts)

    @classmethod
    def start(cls, installation: Installation, connection: XeroConnection,
              requests: list[DealSyncRequest],
              before_call: Callable[[], object] = lambda: None) -> RunContext:
        """The context of a batch, with the connection's Xero client."""
        items = [DealWork.of(r) for r in requests]
        settings = installation.settings or InstallationSettings(installation_id=installation.id)
        # The batch's call is the first try for the deal tried least; each deal's wait after
        # a failure is worked out from its own count (outcomes.postpone).
        xero = xero_client(connection, before_call=before_call,
                      attempt=1 + min((r.attempts for r in requests), default=0))
        return cls(installation, connection, xero, items, settings)

    def open(self) -> list[DealWork]:
        """The items no step has finished yet."""
        return [w for w in self.items if not w.done]

    def review(self, w: DealWork, reason: ReviewReason, detail: str,
               candidates: list[dict[str, object]] | None = None) -> None:
        """A person must decide: a review item, and the deal is done for this run."""
        db.session.add(ReviewItem(installation_id=self.installation.id, deal_id=w.request.deal_id,
                                  reason=reason, detail=detail, candidates=candidates or [],
                                  action=w.action.value))
        w.audit.setdefault("review", []).append({"reason": reason.value, "detail": detail})  # type: ignore[union-attr]
        w.done = True
        self.counts["review"] += 1

    def retry(self, w: DealWork, why: BatchMismatch) -> None:
        """This deal alone runs again later, by its own backoff; the rest of the batch goes
        on. After MAX_MISMATCH_TRIES answers in a row that left it out, a person looks."""
        attempt = w.request.attempts + 1
        if attempt >= MAX_MISMATCH_TRIES:
            self.review(w, ReviewReason.SYNC_FAILED,
                        f"Xero's answer left this deal out {attempt} times ({why.describe()}); "
                        "check Xero for its Reference, then retry (nothing is created twice)")
            return
        w.retry_in, w.done = max(why.seconds, standard_backoff(attempt)), True
        w.audit["retry"] = why.describe()
        self.counts["retry"] += 1

    def unchanged(self, w: DealWork, why: str) -> None:
        """Nothing to send for this deal (Xero's invoice stays as it is)."""
        w.audit["unchanged"] = why
        w.done = True
        self.counts["unchanged"] += 1

    @property
    def retry_in(self) -> float | None:
        """When the deals left for later (BatchMismatch) are due, if any."""
        waits = [w.retry_in for w in self.items if w.retry_in is not None]
        return min(waits) if waits else None
