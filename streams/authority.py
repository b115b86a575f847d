"""Who owns a shipment: the MTO whose registered shipment-id prefix the id starts with, the insurers it places
cover with, the publishers of exchange rates it takes and the banks whose credits it takes. Data from the party registry, handed to the pure fold, so authority never comes from an event's
timestamp or its arrival order.

Prefixes of two MTOs may not overlap (neither may start with the other), so every shipment id has at most one owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping


@dataclass(frozen=True)
class Operator:
    """An MTO: the shipment-id prefixes it owns, the insurers whose policies may cover its shipments, and the
    publishers whose exchange rates (money conversions, the SDR rate of liability limits) it takes besides its own."""

    mto: str
    prefixes: tuple[str, ...]
    insurers: frozenset[str] = frozenset()
    rate_sources: frozenset[str] = frozenset()
    # trade (issue 16): shippers released to on credit terms without paying first; whether a release needs every
    # party to it verified
    credit_terms: frozenset[str] = frozenset()
    require_verified: bool = False
    # the tax authorities whose invoice verifications it takes (streams.invoices), and whether a carrier's payout
    # waits for the carrier's invoices for its legs to be verified and matched
    tax_verifiers: frozenset[str] = frozenset()
    hold_payouts_until_invoice_verified: bool = False
    # the banks whose documentary credits its shipments take (streams.credit): a credit's terms count only from one
    # of them, as a policy counts only from an insurer it places cover with
    banks: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Authority:
    operators: tuple[Operator, ...]
    # the registry's trade roles per party ("customs", "customs_broker", "identity_verifier", "bank")
    roles: tuple[tuple[str, frozenset[str]], ...] = ()
    # the identifiers each party's invoices name it by as seller (streams.invoices checks the issuer against them)
    invoice_ids: tuple[tuple[str, frozenset[str]], ...] = ()

    def __post_init__(self) -> None:
        owned = [(prefix, operator.mto) for operator in self.operators for prefix in operator.prefixes]
        if any(not prefix for prefix, _ in owned):
            raise ValueError("a shipment-id prefix may not be empty")
        for prefix, mto in owned:
            for other, other_mto in owned:
                if other_mto != mto and other.startswith(prefix):
                    raise ValueError(f"shipment-id prefix {other!r} of {other_mto} overlaps {prefix!r} of {mto}")

    @classmethod
    def of(
        cls,
        operators: Iterable[Operator],
        roles: Mapping[str, Iterable[str]] | None = None,
        invoice_ids: Iterable[tuple[str, frozenset[str]]] = (),
    ) -> Authority:
        held = tuple(sorted((party, frozenset(r)) for party, r in (roles or {}).items()))
        ids = tuple(sorted(invoice_ids, key=lambda p: p[0]))
        return cls(tuple(sorted(operators, key=lambda o: o.mto)), held, ids)

    def has_role(self, party: str, role: str) -> bool:
        """Whether the registry gives `party` this role: the only source of a trade party's authority."""
        return any(who == party and role in held for who, held in self.roles)

    def seller_ids(self, party_id: str) -> frozenset[str]:
        """The identifiers the registry lists for `party_id` as an invoice's seller; empty when it lists none."""
        return next((ids for party, ids in self.invoice_ids if party == party_id), frozenset())

    def operator(self, shipment_id: str) -> Operator | None:
        """The MTO that owns `shipment_id`; None when no registered prefix covers it."""
        return next((o for o in self.operators if any(shipment_id.startswith(p) for p in o.prefixes)), None)
