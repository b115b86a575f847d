"""Who may do what on the hub's Kafka: the ACLs of each hub process and of each onboarded party, and the two admin
requests aiokafka 0.14 lacks (CreateAcls for many bindings at once, AlterUserScramCredentials).

Every grant is LITERAL (one exact topic or group), except prefixes that belong to one process each: the
worker's faust topics and changelogs (`<app id>-`), the transactional ids of a runtime stage's producers
(`<stage group>.`), the sharing stage's per-party share topics (`<ns>.hub.share.`, which it
creates as parties appear) and a party's own consumer groups (`<ns>.party.<party>:`; ':' is not in the party id
alphabet, so no party's prefix covers another's groups). Run as a super user (the `admin` principal).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeAlias

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import CreateAclsRequest_v1, DeleteAclsRequest_v1, DescribeAclsRequest
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import CompactArray, CompactBytes, CompactString, Int8, Int16, Int32, Schema, TaggedFields
from pydantic import TypeAdapter

from connectors.kafka import ensure_share_topics
from connectors.sharing.stage import share_group
from connectors.webhooks.filler import group as webhooks_group
from hubconf.settings import PRINCIPALS, WORKER_STAGES, Settings
from schemas.identifiers import PartyId
from hubconf.topics import RAW_FORMATS


class Resource(IntEnum):
    TOPIC = 2
    GROUP = 3
    TRANSACTIONAL_ID = 5


class Pattern(IntEnum):
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    DESCRIBE_CONFIGS = 10


ANY = 1  # in a DescribeAcls filter: any resource type, pattern type, operation or permission
ALLOW = 3
# The broker applies new ACLs a moment after CreateAcls answers (KRaft: once its metadata catches up).
EFFECTIVE_TIMEOUT_S = 30.0
ANY_HOST = "*"
SCRAM_SHA_256 = 1  # the mechanism's id in AlterUserScramCredentials
# RFC 7677 asks for at least 4096; the broker refuses fewer.
SCRAM_ITERATIONS = 8192
# The broker's own users (infra/dev.sh) and the hub's: a party may not take one of their names.
RESERVED_USERS = frozenset({*PRINCIPALS, "broker", "controller"})
# The kinds of party `mmhub parties onboard` knows: a carrier also publishes, on the raw topics only.
PARTY_KINDS = ("carrier", "shipper", "consignee", "insurer", "delegate")


@dataclass(frozen=True)
class Acl:
    """ALLOW `operation` on one resource (or every resource whose name starts with `name`) to User:`user`."""

    user: str
    resource: Resource
    name: str
    operation: Operation
    pattern: Pattern = Pattern.LITERAL


def _topics(user: str, names: list[str], *operations: Operation) -> list[Acl]:
    return [Acl(user, Resource.TOPIC, name, op) for name in names for op in operations]


def runtime_acls(user: str, group: str) -> list[Acl]:
    """A stage on the runtime (runtime.loop): its consumer group, and its transactional producers, whose ids are
    `<group>.<partition>` (the prefix `<group>.`)."""
    return [
        Acl(user, Resource.GROUP, group, Operation.READ),
        *[
            Acl(user, Resource.TRANSACTIONAL_ID, f"{group}.", op, Pattern.PREFIXED)
            for op in (Operation.WRITE, Operation.DESCRIBE)
        ],
    ]


def hub_acls(settings: Settings) -> list[Acl]:
    """What each hub process needs on the namespace's topics and groups, and nothing more.

    Only the worker (the merge and its connector stage), the gateway's verified intake and the operator's tools
    write hub.events; only the worker writes status, settlement, claims, releases, the DLQ and its changelogs.
    """
    t = settings.topics
    raw = [t.raw(name) for name in RAW_FORMATS]
    return [
        *_topics("worker", [t.events, t.references, *raw], Operation.READ),
        *_topics(
            "worker", [t.events, t.references, t.dlq, t.status, t.settlement, t.claims, t.release, t.parked], Operation.WRITE
        ),
        # the runtime's changelogs (and faust's leader topic), which it creates at start if absent; it reads their
        # delete.retention.ms, how long a delete stays in them (runtime.loop._restore)
        *[
            Acl("worker", Resource.TOPIC, f"{settings.app_id}-", op, Pattern.PREFIXED)
            for op in (Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS)
        ],
        Acl("worker", Resource.GROUP, settings.app_id, Operation.READ),
        *[acl for stage in WORKER_STAGES for acl in runtime_acls("worker", settings.stage_group(stage))],
        *_topics("sink", [t.status], Operation.READ),
        Acl("sink", Resource.GROUP, settings.sink_group, Operation.READ),
        *_topics("share", [t.status], Operation.READ),
        *_topics("share", [t.audit, t.datasets_performance], Operation.WRITE),  # and `mmhub dataset publish`
        *[
            Acl("share", Resource.TOPIC, t.share_prefix, op, Pattern.PREFIXED)
            for op in (Operation.CREATE, Operation.WRITE, Operation.DESCRIBE)
        ],
        Acl("share", Resource.GROUP, share_group(settings), Operation.READ),
        *_topics("gateway", [t.events, t.references, t.dlq, t.audit], Operation.WRITE),
        Acl("webhooks", Resource.TOPIC, t.share_prefix, Operation.READ, Pattern.PREFIXED),
        Acl("webhooks", Resource.GROUP, webhooks_group(settings), Operation.READ),
        *_topics("tools", [t.events, *raw], Operation.WRITE),
        *_topics("tools", [t.parked, t.audit, t.dlq], Operation.READ),  # mmhub parked; mmhub audit verify; mmhub dlq
    ]


def party_acls(settings: Settings, party: str, kind: str) -> list[Acl]:
    """A party reads its own share topics (one per audience) with its own groups; a carrier also writes the raw
    topics, where the connector stage checks its signatures. Nothing else: not hub.events, not another's shares."""
    if kind not in PARTY_KINDS:
        raise ValueError(f"unknown party kind {kind!r}; known: {', '.join(PARTY_KINDS)}")
    t = settings.topics
    acls = _topics(party, t.party_share_topics(party), Operation.READ)
    acls.append(Acl(party, Resource.GROUP, t.party_groups(party), Operation.READ, Pattern.PREFIXED))
    if kind == "carrier":
        acls += _topics(party, [t.raw(name) for name in RAW_FORMATS], Operation.WRITE)
    return acls


Binding: TypeAlias = tuple[int, str, int, str, str, int, int]


def _bindings(acls: list[Acl]) -> list[Binding]:
    """The wire form CreateAcls v1 and DeleteAcls v1 share: type, name, pattern, principal, host, operation, ALLOW."""
    return [(a.resource, a.name, a.pattern, f"User:{a.user}", ANY_HOST, a.operation, ALLOW) for a in acls]


class _CreateAcls(Request[CreateAclsRequest_v1]):
    """CreateAcls with many bindings in one request (aiokafka's CreateAclsRequest carries one)."""

    API_KEY = 30

    def __init__(self, acls: list[Acl]) -> None:
        self._acls = acls

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(_bindings(self._acls))


class _DeleteAcls(Request[DeleteAclsRequest_v1]):
    """DeleteAcls with one exact filter per binding."""

    API_KEY = 31

    def __init__(self, acls: list[Acl]) -> None:
        self._acls = acls

    def build(self, request_struct_class: type[DeleteAclsRequest_v1]) -> DeleteAclsRequest_v1:
        return request_struct_class(_bindings(self._acls))


class _AlterUserScramCredentialsResponse(Response):
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _AlterUserScramCredentialsStruct(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = _AlterUserScramCredentialsResponse
    SCHEMA = Schema(
        (
            "deletions",
            CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields)),
        ),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


Upsertion: TypeAlias = tuple[str, int, int, bytes, bytes, dict[int, bytes]]


class _AlterUserScramCredentials(Request[_AlterUserScramCredentialsStruct]):
    API_KEY = 51

    def __init__(self, upsertions: list[Upsertion]) -> None:
        self._upsertions = upsertions

    def build(self, request_struct_class: type[_AlterUserScramCredentialsStruct]) -> _AlterUserScramCredentialsStruct:
        return request_struct_class([], self._upsertions, {})


def scram_upsertion(user: str, password: str) -> Upsertion:
    """The client side of a SCRAM-SHA-256 credential (RFC 5802 SaltedPassword = PBKDF2-HMAC-SHA-256); the broker
    derives the stored and server keys from it, so the password itself never travels."""
    salt = secrets.token_bytes(32)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    return (user, SCRAM_SHA_256, SCRAM_ITERATIONS, salt, salted, {})


class AclAdmin:
    """A super user's connection for creating ACLs and SCRAM users."""

    def __init__(self, settings: Settings) -> None:
        self._client = AIOKafkaClient(**settings.kafka_client(client_id="mmhub-acl-admin"))

    async def __aenter__(self) -> AclAdmin:
        await self._client.bootstrap()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.close()

    async def _send(self, request: Request[Any]) -> Any:
        return await self._client.send(self._client.get_random_node(), request)

    async def create_acls(self, acls: list[Acl]) -> None:
        """Create the bindings (creating one that exists changes nothing); raise on the first one refused.
        Returns once the broker enforces them all, so a client started next is not refused."""
        if not acls:
            return
        response = await self._send(_CreateAcls(acls))
        for acl, (code, message) in zip(acls, response.creation_responses, strict=True):
            if code:
                raise for_code(code)(f"creating {acl}: {message}")
        deadline = time.monotonic() + EFFECTIVE_TIMEOUT_S
        users = {acl.user for acl in acls}
        while missing := set(acls) - {acl for user in sorted(users) for acl in await self.described(user)}:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the broker does not show {len(missing)} new ACL(s), such as {next(iter(missing))}")
            await asyncio.sleep(0.1)

    async def described(self, user: str | None = None) -> set[Acl]:
        """The ALLOW bindings of the kinds the hub makes that the broker holds, for one user or for everyone."""
        principal = None if user is None else f"User:{user}"
        response = await self._send(DescribeAclsRequest(ANY, None, ANY, principal, None, ANY, ANY))
        if response.error_code:
            raise for_code(response.error_code)(f"describing ACLs: {response.error_message}")
        found: set[Acl] = set()
        for resource_type, name, pattern, bindings in response.resources:
            if resource_type not in set(Resource) or pattern not in set(Pattern):
                continue  # not one of ours (the hub grants only on topics and groups, literal or prefixed)
            for who, _, operation, permission in bindings:
                if permission == ALLOW and who.startswith("User:") and operation in set(Operation):
                    user_of = who.removeprefix("User:")
                    found.add(Acl(user_of, Resource(resource_type), name, Operation(operation), Pattern(pattern)))
        return found

    async def delete_acls(self, acls: list[Acl]) -> None:
        """Delete exactly these bindings (a missing one is no error)."""
        if not acls:
            return
        response = await self._send(_DeleteAcls(acls))
        for acl, (code, message, _) in zip(acls, response.filter_responses, strict=True):
            if code:
                raise for_code(code)(f"deleting {acl}: {message}")

    async def upsert_user(self, user: str, password: str) -> None:
        """Create the SCRAM-SHA-256 user, or set its password if it exists."""
        response = await self._send(_AlterUserScramCredentials([scram_upsertion(user, password)]))
        for name, code, message, _ in response.results:
            if code:
                raise for_code(code)(f"SCRAM credentials of {name}: {message}")


async def ensure_hub_acls(settings: Settings) -> None:
    async with AclAdmin(settings) as admin:
        await admin.create_acls(hub_acls(settings))


async def drop_namespace_acls(settings: Settings, namespaces: list[str]) -> None:
    """Delete every ACL on these namespaces' topics and groups, the hub's and the parties' (tests, the demo)."""
    prefixes = tuple(f"{namespace}." for namespace in namespaces if namespace)
    if not prefixes:
        return
    async with AclAdmin(settings) as admin:
        await admin.delete_acls(sorted((a for a in await admin.described() if a.name.startswith(prefixes)), key=repr))


async def onboard(settings: Settings, party: str, kind: str) -> str:
    """One party's Kafka access: its SCRAM user with a new random password (returned, and stored nowhere), its
    share topics and its ACLs (party_acls). Run again, it changes the password and adds what is missing."""
    TypeAdapter(PartyId).validate_python(party)
    if party in RESERVED_USERS:
        raise ValueError(f"{party!r} is one of the hub's own Kafka principals, not a party")
    acls = party_acls(settings, party, kind)
    password = secrets.token_urlsafe(32)
    await ensure_share_topics(settings, settings.topics.party_share_topics(party))
    async with AclAdmin(settings) as admin:
        await admin.upsert_user(party, password)
        await admin.create_acls(acls)
    return password
