"""Two-way contact sync between a CRM company (or person) and its linked Xero contact (#15).

- `mapping`: which fields sync, in which direction, and who wins a conflict (data, with
  defaults per CRM; the admin's overrides from ContactSyncSettings).
- `values`: each side's record as comparable field values, and their hashes.
- `rules`: pure decisions per field (write to the CRM, write to Xero, nothing, conflict),
  loop prevention included; no HTTP, no database.
- `scope`: which Xero contacts sync at all (contact groups, IsCustomer/IsSupplier).
- `state`: the link's sync state as a plain value, to and from the ContactLink row.
"""
