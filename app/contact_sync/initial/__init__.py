"""The initial contact match (issue #15 part 2): the careful first match of every CRM company
with every Xero contact, reviewed by the admin before anything is written.

- `read`: a run pages through all CRM companies and all Xero contacts into the database,
  saving its place after every page (a crash, kill or retry-later resumes there), inside
  the tenant's shared Xero quota with contact sync's reserve left for invoicing.
- `match`: pure: the records -> review rows in the admin's dedupe order (proposed link,
  already linked, Xero-only, CRM-only, ambiguous with candidates).
- `rows`: the review's rows as the DB holds them (counts, pages) and the admin's choices
  (approve all proposed, apply my choices, a test batch of N).
- `apply`, `creates`: the background job carrying out approved rows: links (ContactLinks
  with sync state, via one reconcile pass), contacts created in Xero (POST /Contacts, 50 a
  call) and companies created in the CRM; each row done or failed with its reason;
  resumable without creating twice.
"""
