"""Which Xero contacts sync to the CRM at all: the admin's contact groups and roles.

Xero sets the roles itself: IsCustomer "if a contact has any AR invoices entered against
them", IsSupplier for AP invoices; neither "can be set via PUT or POST"
(tests/specs/xero/xero_accounting.yaml, Contact.IsCustomer / IsSupplier). A contact with
neither has no transactions yet ("unassigned")."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

ROLES = ("customer", "supplier", "unassigned")
DEFAULT_ROLES = ("customer", "unassigned")  # suppliers-only contacts stay in Xero


@dataclass(frozen=True)
class ContactScope:
    is_customer: bool
    is_supplier: bool
    group_ids: frozenset[str] = frozenset()
    active: bool = True  # ContactStatus ACTIVE (archived contacts are for the merge rules)


def roles_of(scope: ContactScope) -> set[str]:
    roles = {r for r, on in (("customer", scope.is_customer), ("supplier", scope.is_supplier))
             if on}
    return roles or {"unassigned"}


def in_scope(scope: ContactScope, roles: Collection[str] = DEFAULT_ROLES,
             groups: Collection[str] = ()) -> bool:
    """Whether the contact syncs: active, in one of the chosen groups (none chosen: any), and
    of a chosen role; a contact that is customer and supplier syncs if either is chosen."""
    if not scope.active:
        return False
    if groups and not scope.group_ids & set(groups):
        return False
    return bool(roles_of(scope) & set(roles))
