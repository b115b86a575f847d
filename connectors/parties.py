"""The parties that read from the hub (shippers, consignees, carriers, insurers, brokers) and their API tokens.

A reader authenticates with `Authorization: Bearer <token>`. The registry keeps only each token's SHA-256, so
the file can be shared with operators without sharing access; a party may hold several tokens (rotation).
What a party may then read of a shipment is decided by streams.sharing, never here.

An MTO's entry also says which shipment ids are its own (`shipment_prefixes`), the insurers it places cover with
(`insurers`) and the banks whose documentary credits its shipments take (`banks`): the fold takes them as its
`Authority` (streams.authority), so only the owner may book a shipment.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from schemas.base import Frozen
from schemas.identifiers import PartyId, ShipmentId
from schemas.invoices import InvoiceIdentifier, InvoiceParty
from streams.authority import Authority, Operator

Role = Literal["shipper", "consignee", "mto", "carrier", "insurer", "customs_broker", "customs", "identity_verifier", "bank", "tax_verifier", "lender"]
TRADE_ROLES = ("customs", "customs_broker", "identity_verifier", "bank")
BEARER = "Bearer "


class ReaderToken(Frozen):
    token_id: str = Field(min_length=1, max_length=64)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Party(Frozen):
    party_id: PartyId
    name: str = Field(min_length=1, max_length=200)
    roles: list[Role] = Field(min_length=1)
    tokens: list[ReaderToken] = []
    shipment_prefixes: list[ShipmentId] = []
    insurers: list[PartyId] = []
    rate_sources: list[PartyId] = []
    credit_terms: list[PartyId] = []
    banks: list[PartyId] = []  # the banks whose documentary credits the MTO's shipments take (streams.credit)
    require_verified_parties: bool = False
    # e-invoices (streams.invoices): an MTO's tax verifiers and payout hold; any party's identifiers as a seller
    tax_verifiers: list[PartyId] = []
    hold_payouts_until_invoice_verified: bool = False
    invoice_ids: list[str] = []  # as SCHEME:VALUE (an ISO 6523 ICD or VAT) or a bare value

    def invoice_party(self) -> InvoiceParty:
        """The party as an invoice names it (streams.invoices compares identifiers by value, without scheme)."""
        identifiers = []
        for named in self.invoice_ids:
            scheme, _, value = named.rpartition(":")
            identifiers.append(InvoiceIdentifier(scheme=scheme or None, value=value))
        return InvoiceParty(name=self.name, identifiers=identifiers)


class PartyRegistry(Frozen):
    about: str = ""
    parties: list[Party]

    @model_validator(mode="after")
    def _unique(self) -> PartyRegistry:
        ids = [p.party_id for p in self.parties]
        if len(ids) != len(set(ids)):
            raise ValueError("a party is listed twice")
        hashes = [t.sha256 for p in self.parties for t in p.tokens]
        if len(hashes) != len(set(hashes)):
            raise ValueError("one token is registered for two parties or twice")
        for party in self.parties:
            if (
                party.shipment_prefixes or party.insurers or party.rate_sources or party.credit_terms or party.banks
            ) and "mto" not in party.roles:
                raise ValueError(
                    f"{party.party_id} is not an MTO: it owns no shipment ids, places no cover, takes no rates and no credits"
                )
            for bank in party.banks:
                found = self.party(bank)
                if found is None or "bank" not in found.roles:
                    raise ValueError(f"{party.party_id} names {bank} as a bank, but the registry does not")
            for insurer in party.insurers:
                found = self.party(insurer)
                if found is None or "insurer" not in found.roles:
                    raise ValueError(f"{party.party_id} names {insurer} as an insurer, but the registry does not")
            if (party.tax_verifiers or party.hold_payouts_until_invoice_verified) and "mto" not in party.roles:
                raise ValueError(f"{party.party_id} is not an MTO: it takes no invoice verifications and holds no payouts")
            for verifier in party.tax_verifiers:
                found = self.party(verifier)
                if found is None or "tax_verifier" not in found.roles:
                    raise ValueError(f"{party.party_id} names {verifier} as a tax verifier, but the registry does not")
        self.authority()  # refuses prefixes of two MTOs that overlap
        return self

    def authority(self) -> Authority:
        """Which MTO owns which shipment ids, and the insurers each places cover with: what the fold is given."""
        return Authority.of(
            (
                Operator(
                    p.party_id,
                    tuple(p.shipment_prefixes),
                    frozenset(p.insurers),
                    frozenset(p.rate_sources),
                    frozenset(p.credit_terms),
                    p.require_verified_parties,
                    frozenset(p.tax_verifiers),
                    p.hold_payouts_until_invoice_verified,
                    frozenset(p.banks),
                )
                for p in self.parties
                if "mto" in p.roles
            ),
            {p.party_id: [r for r in p.roles if r in TRADE_ROLES] for p in self.parties if set(p.roles) & set(TRADE_ROLES)},
            ((p.party_id, frozenset(i.value for i in p.invoice_party().identifiers)) for p in self.parties if p.invoice_ids),
        )

    def party(self, party_id: str) -> Party | None:
        return next((p for p in self.parties if p.party_id == party_id), None)

    def authenticate(self, authorization: str | None) -> str | None:
        """The party whose token this `Authorization` header carries; None for anything else."""
        if not authorization or not authorization.startswith(BEARER):
            return None
        presented = hashlib.sha256(authorization[len(BEARER):].strip().encode("utf-8", "replace")).hexdigest()
        found = None
        for party in self.parties:
            for token in party.tokens:
                if hmac.compare_digest(token.sha256, presented):
                    found = party.party_id
        return found


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_parties(path: Path) -> PartyRegistry:
    try:
        return PartyRegistry.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as error:
        raise ValueError(f"party registry {path}: {error}") from error
