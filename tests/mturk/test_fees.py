"""MTurk's commission on hand-checked cases."""
from decimal import Decimal

import pytest

from server.mturk.fees import FeeError, bonus_fee, dollars, fee_rate, parse_amount, publish_cost


def test_paper_hit_with_masters():
    # $0.05 x 20 assignments, Masters: 40 % + 5 % = 45 % -> $0.0225 per assignment.
    c = publish_cost("0.05", 20, 1, masters=True)
    assert c.rate == Decimal("0.45")
    assert c.fee_per_assignment == Decimal("0.0225")
    assert c.reward_total == Decimal("1.00") and c.fee_total == Decimal("0.45")
    assert c.total == Decimal("1.45")


def test_paper_layout_total():
    # 120 HITs x 20 assignments x $0.05 = $120 rewards, 45 % fee = $54, total $174.
    c = publish_cost("0.05", 20, 120, masters=True)
    assert (c.reward_total, c.fee_total, c.total_cents) == (Decimal("120.00"),
                                                             Decimal("54.0000"),
                                                             Decimal("174.00"))
    text = "\n".join(c.lines())
    assert "120 x 20 assignments = 2400 assignments (Masters)" in text
    assert "45 %" in text and "$54.00" in text and "Total: $174.00" in text


def test_fee_rate_steps_at_ten_assignments():
    assert fee_rate(9, False) == Decimal("0.20")
    assert fee_rate(10, False) == Decimal("0.40")
    assert fee_rate(9, True) == Decimal("0.25")
    # $1.00 x 9: 20 % -> $0.20 each; x 10: 40 % -> $0.40 each.
    assert publish_cost("1.00", 9).fee_total == Decimal("1.80")
    assert publish_cost("1.00", 10).fee_total == Decimal("4.00")


def test_minimum_fee_of_one_cent_per_assignment():
    # $0.01 x 5: 20 % would be $0.002; the minimum $0.01 applies.
    c = publish_cost("0.01", 5)
    assert c.fee_per_assignment == Decimal("0.01") and c.fee_total == Decimal("0.05")
    assert "minimum $0.01 applies" in "\n".join(c.lines())
    # $0.02 x 10 with Masters: 45 % = $0.009 < $0.01 -> $0.01 each.
    assert publish_cost("0.02", 10, masters=True).fee_per_assignment == Decimal("0.01")
    # $0.05 x 1: 20 % = $0.01 exactly, no floor message.
    c = publish_cost("0.05", 1)
    assert c.fee_per_assignment == Decimal("0.0100") and "minimum" not in "\n".join(c.lines())


def test_bonus_fee_and_rounding():
    assert bonus_fee("1.00") == Decimal("0.20")
    assert bonus_fee("0.02") == Decimal("0.01")
    assert dollars(Decimal("0.0225")) == "$0.02" and dollars(Decimal("0.025")) == "$0.03"
    assert dollars(Decimal("1234.5")) == "$1,234.50"


@pytest.mark.parametrize("bad", ["abc", "-1", "0.001", "nan", "1e400", ""])
def test_bad_amounts(bad):
    with pytest.raises(FeeError):
        parse_amount(bad)


def test_good_amounts():
    assert parse_amount("$0.5") == Decimal("0.50") and parse_amount(3) == Decimal("3.00")
