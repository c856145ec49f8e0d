"""Every invoice state a deal can show."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from xero.status import deal_status

TODAY = date(2026, 11, 21)


@pytest.mark.parametrize(("status", "total", "due", "paid", "credited", "due_date", "expected"), [
    ("DRAFT", "110", "110", "0", "0", date(2026, 12, 1), "draft"),
    ("SUBMITTED", "110", "110", "0", "0", date(2026, 12, 1), "awaiting_approval"),
    ("AUTHORISED", "110", "110", "0", "0", date(2026, 12, 1), "awaiting_payment"),
    ("AUTHORISED", "110", "60", "50", "0", date(2026, 12, 1), "partially_paid"),
    ("AUTHORISED", "110", "110", "0", "0", date(2026, 11, 20), "overdue"),
    ("AUTHORISED", "110", "60", "50", "0", date(2026, 11, 20), "overdue"),  # part paid, late
    ("AUTHORISED", "110", "110", "0", "0", TODAY, "awaiting_payment"),  # due today: not late
    ("PAID", "110", "0", "110", "0", date(2026, 11, 20), "paid"),
    ("PAID", "110", "0", "0", "110", date(2026, 12, 1), "credited"),
    ("PAID", "110", "0", "60", "50", date(2026, 12, 1), "paid"),
    ("AUTHORISED", "110", "60", "0", "50", date(2026, 12, 1), "partially_paid"),  # part credited
    ("AUTHORISED", "110", "-10", "120", "0", date(2026, 12, 1), "paid"),  # overpaid
    ("PAID", "110", "0", "110", "0", date(2026, 11, 1), "paid"),  # paid late is paid, not overdue
    ("VOIDED", "110", "0", "0", "0", date(2026, 12, 1), "voided"),
    ("DELETED", "110", "0", "0", "0", date(2026, 12, 1), "deleted"),
])
def test_each_xero_state_maps_to_one_deal_status(status, total, due, paid, credited, due_date, expected):
    assert deal_status(status, total=D(total), amount_due=D(due), amount_paid=D(paid),
                       amount_credited=D(credited), due_date=due_date, today=TODAY) == expected


# Xero counts prepayments and overpayments inside AmountCredited (OpenAPI
# Invoice.AmountCredited: "Sum of all credit notes, over-payments and pre-payments applied to
# invoice"); the allocated part (Prepayments/Overpayments[].AppliedAmount) is money the
# customer paid, so it shows as paid.
@pytest.mark.parametrize(("status", "due", "paid", "credited", "prepaid", "expected"), [
    ("PAID", "0", "0", "110", "110", "paid"),  # all by a prepayment: paid, not credited
    ("PAID", "0", "0", "110", "60", "paid"),  # 60 prepaid + 50 credit note: some money came
    ("PAID", "0", "0", "110", "0", "credited"),  # credit notes only
    ("AUTHORISED", "50", "0", "60", "60", "partially_paid"),  # part prepaid
    ("PAID", "0", "0", "110", None, "credited"),  # not known (summary read): as before
])
def test_prepayments_and_overpayments_are_payments(status, due, paid, credited, prepaid, expected):
    assert deal_status(status, total=D("110"), amount_due=D(due), amount_paid=D(paid),
                       amount_credited=D(credited), due_date=date(2026, 12, 1), today=TODAY,
                       amount_prepaid=None if prepaid is None else D(prepaid)) == expected
