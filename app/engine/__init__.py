"""The invoice engine: deals waiting for an invoice -> exactly one Xero invoice each -> the
invoice's number, status and link written back onto the deal.

Exactly once, whatever happens:
- a request per deal is stored (repeats merge: `intake`), and one job per installation works
  through them under a Redis lock (`job`), so concurrent jobs for a deal never race;
- the InvoiceLink row (unique per deal and trigger) is committed *before* Xero is called,
  with a deterministic Reference and Idempotency-Key (`keys`, `steps.send`);
- a link left PENDING (crash, timeout, lost response) is looked up in Xero by Reference
  before anything is created again (idempotency keys only live minutes: `steps.links`);
- a later, stronger rule (authorise after draft) updates the existing draft - but only a
  DRAFT exactly as Paydeck last wrote it (Xero's UpdatedDateUTC, read just before): what
  finance changed or approved in Xero is never overwritten unasked (a review item offers
  "keep Xero's" or "re-send the deal": `steps.plan`, `reviews`);
- a request merged into the row while a run works on it bumps the row's version, and the run
  deletes only the version it handled, so the newer request (an approval) is never lost;
- a webhook's request follows the stage the deal is in when the job reads it, not the one it
  passed through (`steps.deals`).

A batch is a list of steps over one work list (`run.STEPS`, `context.RunContext`); an item
sent to review is done, and later steps skip it. The invoice date is the deal's date in the
organisation's timezone (`steps.build.invoice_date`).
"""
