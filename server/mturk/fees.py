"""What a batch of HITs costs on Mechanical Turk, in exact decimal dollars.

MTurk's commission: 20 % of the reward, 40 % when a HIT has 10 or more assignments, 5 %
more for Masters, and never less than $0.01 per assignment. Bonuses carry 20 % with the
same $0.01 minimum. Figures are Decimals so that the total printed before a production
publish is the one a researcher can check by hand.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
MIN_FEE = Decimal("0.01")


class FeeError(ValueError):
    """A reward or count that MTurk would not accept."""


def parse_amount(value) -> Decimal:
    """Return `value` (str, int, float or Decimal dollars) as a Decimal with at most two
    decimal places; raise FeeError for anything else or a negative amount."""
    try:
        amount = Decimal(str(value).strip().lstrip("$"))
    except (InvalidOperation, ValueError):
        raise FeeError(f"not a dollar amount: {value!r}") from None
    if not amount.is_finite() or amount < 0 or amount > 10**9:
        raise FeeError(f"not a dollar amount: {value!r}")
    if amount != amount.quantize(CENT):
        raise FeeError(f"dollar amounts have at most two decimals: {value!r}")
    return amount.quantize(CENT)


def fee_rate(assignments: int, masters: bool) -> Decimal:
    """Return MTurk's commission rate for a HIT with `assignments` assignments."""
    rate = Decimal("0.40") if assignments >= 10 else Decimal("0.20")
    if masters:
        rate += Decimal("0.05")
    return rate


def fee_per_assignment(reward, assignments: int, masters: bool) -> Decimal:
    """Return the commission on one assignment (unrounded below the cent, at least $0.01)."""
    return max(MIN_FEE, parse_amount(reward) * fee_rate(assignments, masters))


def bonus_fee(amount) -> Decimal:
    """Return the commission on one bonus payment (20 %, at least $0.01)."""
    return max(MIN_FEE, parse_amount(amount) * Decimal("0.20"))


def dollars(amount: Decimal) -> str:
    """Return `amount` as '$1,234.56' (rounded half up to the cent)."""
    return f"${amount.quantize(CENT, rounding=ROUND_HALF_UP):,.2f}"


@dataclass(frozen=True)
class Cost:
    """The full cost of publishing `hits` HITs of `assignments` assignments each."""
    reward: Decimal
    assignments: int
    hits: int
    masters: bool
    rate: Decimal
    fee_per_assignment: Decimal
    reward_total: Decimal
    fee_total: Decimal

    @property
    def total(self) -> Decimal:
        """Rewards plus commission, exact."""
        return self.reward_total + self.fee_total

    @property
    def total_cents(self) -> Decimal:
        """What will be charged, rounded half up to the cent."""
        return self.total.quantize(CENT, rounding=ROUND_HALF_UP)

    def lines(self) -> list[str]:
        """Return the human-readable breakdown printed before publishing."""
        n = self.hits * self.assignments
        pct = f"{self.rate * 100:.0f} %"
        floor = " (minimum $0.01 applies)" if self.fee_per_assignment == MIN_FEE and \
            self.reward * self.rate < MIN_FEE else ""
        return [
            f"HITs: {self.hits} x {self.assignments} assignments = {n} assignments"
            + (" (Masters)" if self.masters else ""),
            f"Rewards: {n} x {dollars(self.reward)} = {dollars(self.reward_total)}",
            f"MTurk fee: {pct} per assignment = ${self.fee_per_assignment.normalize():f}{floor}"
            f" x {n} = {dollars(self.fee_total)}",
            f"Total: {dollars(self.total)}",
        ]


def publish_cost(reward, assignments: int, hits: int = 1, masters: bool = False) -> Cost:
    """Return the Cost of `hits` HITs with `assignments` assignments at `reward` each."""
    if assignments < 1 or hits < 0:
        raise FeeError("a HIT needs at least one assignment")
    amount = parse_amount(reward)
    per = fee_per_assignment(amount, assignments, masters)
    n = hits * assignments
    return Cost(reward=amount, assignments=assignments, hits=hits, masters=masters,
                rate=fee_rate(assignments, masters), fee_per_assignment=per,
                reward_total=amount * n, fee_total=per * n)
