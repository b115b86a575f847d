"""The CBV 2.0 Event Hash ID of an EPCIS 2.0 JSON-LD event: `ni:///sha-256;<hex>?ver=CBV2.0`.

Pure. The hash is SHA-256 of the event's *pre-hash string*, built as CBV 2.0 (section 8.9) and its reference
generator (RalphTro/epcis-event-hash-generator, whose test vectors the unit tests check) build it:

- `eventType=<type>`, then the fields in the canonical property order (`PROPERTY_ORDER`), each `name=value`, a list
  or structure as its name followed by its children; repeated children sorted as strings; nothing for an absent
  field; then every other field (ILMD, user extensions, and the business transaction, source and destination lists,
  whose entries keep their own `type` pair in the order sent) sorted as strings.
- `eventID`, `recordTime`, `errorDeclaration` and the JSON-LD `type` take no part, so an event carrying an
  errorDeclaration hashes like the event it declares in error; nor do the fields the document lists in a top-level
  `<prefix>:ignoreFields` (a repository's own bookkeeping, such as a stored hash or capture id).
- User extensions are `{namespace}localName`, the prefix resolved by the document's `@context`; extensions inside
  readPoint, bizLocation, sensorElement, sensorMetadata and sensorReport follow that structure's own fields.
- Values: white space trimmed; times in UTC with milliseconds (`...T11:00:00.000Z`); numbers without trailing zeros;
  `urn:epcglobal:cbv:` vocabulary and bare CBV words (`shipping`, `in_transit`, `po`...) as `https://ref.gs1.org/cbv/`
  web URIs, bare GS1 vocabulary (`Temperature`) as `https://gs1.org/voc/`; EPC URIs (`urn:epc:id:sgtin:...`, class
  and pattern URIs) and GS1 Digital Link URIs on any domain as the constrained canonical Digital Link
  (`connectors.epcis.digital_link`).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from connectors.epcis.digital_link import canonical_digital_link

PREFIX = "ni:///sha-256;"
SUFFIX = "?ver=CBV2.0"

Order = list[tuple[str, "Order | None"]]

_QUANTITY: Order = [("epcClass", None), ("quantity", None), ("uom", None)]
PROPERTY_ORDER: Order = [
    ("eventTime", None),
    ("eventTimeZoneOffset", None),
    ("certificationInfo", None),
    ("parentID", None),
    ("epcList", [("epc", None)]),
    ("inputEPCList", [("epc", None)]),
    ("childEPCs", [("epc", None)]),
    ("quantityList", [("quantityElement", _QUANTITY)]),
    ("childQuantityList", [("quantityElement", _QUANTITY)]),
    ("inputQuantityList", [("quantityElement", _QUANTITY)]),
    ("outputEPCList", [("epc", None)]),
    ("outputQuantityList", [("quantityElement", _QUANTITY)]),
    ("action", None),
    ("transformationID", None),
    ("bizStep", None),
    ("disposition", None),
    ("persistentDisposition", [("set", None), ("unset", None)]),
    ("readPoint", [("id", None)]),
    ("bizLocation", [("id", None)]),
    (
        "sensorElementList",
        [
            (
                "sensorElement",
                [
                    (
                        "sensorMetadata",
                        [
                            (name, None)
                            for name in (
                                "time", "startTime", "endTime", "deviceID", "deviceMetadata", "rawData",
                                "dataProcessingMethod", "bizRules",
                            )
                        ],
                    ),
                    (
                        "sensorReport",
                        [
                            (name, None)
                            for name in (
                                "type", "exception", "deviceID", "deviceMetadata", "rawData", "dataProcessingMethod",
                                "time", "microorganism", "chemicalSubstance", "value", "component", "stringValue",
                                "booleanValue", "hexBinaryValue", "uriValue", "minValue", "maxValue", "meanValue",
                                "sDev", "percRank", "percValue", "uom", "coordinateReferenceSystem",
                            )
                        ],
                    ),
                ],
            )
        ],
    ),
]
IGNORED = frozenset({"recordTime", "eventID", "type", "errorDeclaration"})
NOT_HASHED = frozenset({"#text", "rdfs:comment", "comment"})
# Lists whose entries are an identifier with its `type` (kept as a pair, in the order sent, never sorted inside).
TYPED_LISTS = {"bizTransactionList": "bizTransaction", "sourceList": "source", "destinationList": "destination"}
TYPED_ENTRIES = frozenset(TYPED_LISTS.values())

CBV = "https://ref.gs1.org/cbv/"
GS1_VOC = "https://gs1.org/voc/"
# Fields whose bare words are CBV or GS1 vocabulary (the EPCIS 2.0 JSON-LD context types them `@vocab`).
VOCABULARY = {
    "bizStep": CBV + "BizStep-",
    "disposition": CBV + "Disp-",
    "set": CBV + "Disp-",
    "unset": CBV + "Disp-",
    "reason": CBV + "ER-",
    "component": CBV + "Comp-",
    "exception": GS1_VOC,
}
TYPED_VOCABULARY = {"bizTransactionList": CBV + "BTT-", "sourceList": CBV + "SDT-", "destinationList": CBV + "SDT-"}
URN_VOCABULARY = {
    "urn:epcglobal:cbv:bizstep:": CBV + "BizStep-",
    "urn:epcglobal:cbv:disp:": CBV + "Disp-",
    "urn:epcglobal:cbv:btt:": CBV + "BTT-",
    "urn:epcglobal:cbv:sdt:": CBV + "SDT-",
    "urn:epcglobal:cbv:er:": CBV + "ER-",
}
STANDARD_PREFIXES = {"gs1": GS1_VOC, "cbv": CBV, "epcis": "https://ref.gs1.org/epcis/"}


@dataclass
class _Node:
    """One element of the event as the pre-hash reads it: a name, a value and children (consumed as they are used)."""

    name: str
    value: str = ""
    children: list[_Node] = field(default_factory=list)
    pair: bool = False  # an identifier with its type, from a typed list: hashed as its two children, unsorted

    def sort_key(self) -> tuple[Any, ...]:
        return (self.name, self.value, tuple(child.sort_key() for child in self.children))


def event_hash(event: dict[str, Any], context: object = None, ignored: frozenset[str] = frozenset()) -> str:
    """The CBV 2.0 Event Hash ID of one EPCIS event (a JSON object), with its document's `@context` and the event
    fields the document says to ignore (`ignored_fields`)."""
    return PREFIX + hashlib.sha256(pre_hash(event, context, ignored).encode("utf-8")).hexdigest() + SUFFIX


def ignored_fields(document: dict[str, Any]) -> frozenset[str]:
    """The fields a document's top-level `<prefix>:ignoreFields` list names."""
    return frozenset(
        name
        for key, names in document.items()
        if key.rpartition(":")[2] == "ignoreFields" and isinstance(names, list)
        for name in names
        if isinstance(name, str)
    )


def pre_hash(event: dict[str, Any], context: object = None, ignored: frozenset[str] = frozenset()) -> str:
    """The pre-hash string of one EPCIS event: see the module docstring."""
    prefixes = _prefixes(context)
    event = {key: value for key, value in event.items() if key not in ignored}
    expanded = _vocabulary_expansions(event)
    root = _structure(_node(_with_vocabulary(event, expanded), prefixes))
    event_type = event.get("type")
    ordered = _ordered(root.children, PROPERTY_ORDER)
    rest = [child for child in root.children if child.name not in IGNORED]
    return f"eventType={event_type if isinstance(event_type, str) else ''}" + ordered + _generic(rest)


# --- JSON to nodes ---------------------------------------------------------------------------------------------------


def _prefixes(context: object) -> dict[str, str]:
    """Prefix -> namespace, from the standard CURIE prefixes and the document's inline `@context` objects."""
    found = dict(STANDARD_PREFIXES)
    for entry in context if isinstance(context, list) else [context]:
        if isinstance(entry, dict):
            found.update({key: value for key, value in entry.items() if isinstance(value, str)})
    return found


def _node(value: object, prefixes: dict[str, str]) -> _Node:
    if isinstance(value, list):
        return _Node("", "", [_node(item, prefixes) for item in value])
    if isinstance(value, dict):
        kind = value.get("type")
        node = _Node(kind if isinstance(kind, str) else "", str(value.get("#text", "")))
        for key, item in value.items():
            if key in NOT_HASHED:
                continue
            child = _node(item, prefixes)
            name = _expanded_key(key, prefixes)
            if isinstance(item, list):
                node.children += [_Node(name, element.value, element.children) for element in child.children]
            else:
                node.children.append(_Node(name, child.value, child.children))
        if not TYPED_ENTRIES & value.keys():
            node.children.sort(key=_Node.sort_key)
        return node
    return _Node("", _scalar(value, prefixes))


def _scalar(value: object, prefixes: dict[str, str]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        prefix, colon, local = value.partition(":")
        if colon and prefix in prefixes and not local.startswith("//"):
            return prefixes[prefix] + local
        return value
    return "" if value is None else str(value)


def _expanded_key(key: str, prefixes: dict[str, str]) -> str:
    prefix, colon, local = key.partition(":")
    if colon and prefix in prefixes and prefix not in STANDARD_PREFIXES:
        return "{" + prefixes[prefix] + "}" + local
    return key


def _vocabulary_expansions(event: dict[str, Any]) -> set[str]:
    """The web URIs the event's vocabulary fields expand to (bare words against their vocabulary)."""
    found: set[str] = set()

    def walk(value: object, key: str, list_name: str | None) -> None:
        if isinstance(value, dict):
            for child_key, child in value.items():
                walk(child, child_key, list_name)
        elif isinstance(value, list):
            for item in value:
                walk(item, key, key if key in TYPED_VOCABULARY else list_name)
        elif isinstance(value, str):
            base = TYPED_VOCABULARY.get(list_name or "") if key == "type" else VOCABULARY.get(key)
            if key == "type" and list_name is None and value and ":" not in value:
                base = GS1_VOC  # sensorReport type: the event's own `type` is not a vocabulary word
            if base and value and ":" not in value:
                found.add(base + value)
            elif value.startswith((CBV, GS1_VOC)):
                found.add(value)

    for key, value in event.items():
        if key != "type":
            walk(value, key, None)
    return found


def _with_vocabulary(value: object, expanded: set[str]) -> Any:
    """Bare vocabulary words replaced by the one web URI that ends in `-word` or `/word`, wherever they stand."""
    # Each URI reversed, sorted: the ones ending in `-word` are those starting with `drow-`, found by bisection. A scan
    # of every URI for every string was quadratic: 8000 URIs in one event cost 12 s, a 4 MiB document about an hour.
    return _words_replaced(value, sorted(uri[::-1] for uri in expanded))


def _words_replaced(value: object, reversed_uris: list[str]) -> Any:
    if isinstance(value, dict):
        return {key: (item if key == "type" and isinstance(item, str) and item.endswith("Event") else
                      _words_replaced(item, reversed_uris)) for key, item in value.items()}
    if isinstance(value, list):
        return [_words_replaced(item, reversed_uris) for item in value]
    if isinstance(value, str):
        matches = _ending_in(reversed_uris, value)
        return matches[0] if len(matches) == 1 else value
    return value


def _ending_in(reversed_uris: list[str], word: str) -> list[str]:
    """The URIs ending in `-word` or `/word`, at most two of each (enough to tell one from several)."""
    found: list[str] = []
    for separator in "-/":
        start = word[::-1] + separator
        low = bisect_left(reversed_uris, start)
        high = bisect_left(reversed_uris, start[:-1] + chr(ord(separator) + 1))  # past every string starting so
        found += [reversed_uris[index][::-1] for index in range(low, min(high, low + 2))]
    return found


def _structure(node: _Node) -> _Node:
    """EPCIS JSON to the XML model the pre-hash is defined over: `xList` entries become `x` children of one `xList`
    (typed lists: pairs), `childEPCs` entries `epc`, quantity entries `quantityElement`, input/output EPCs `epc`."""
    children: list[_Node] = []
    lists: dict[str, list[_Node]] = {}
    for child in node.children:
        if child.name.endswith("List"):
            lists.setdefault(child.name, []).append(child)
        elif child.name != "childEPCs":
            children.append(_structure(child))
    for name, entries in lists.items():
        if name in TYPED_LISTS:
            pairs = [_Node("", "", entry.children[:2], pair=True) for entry in entries]
            children.append(_Node(name, "", pairs))
        else:
            children.append(_structure(_Node(name, "", [_Node(name[:-4], e.value, e.children) for e in entries])))
    epcs = [_Node("epc", child.value) for child in node.children if child.name == "childEPCs"]
    if epcs:
        children.append(_Node("childEPCs", "", epcs))
    name = node.name
    if name in ("inputEPC", "outputEPC"):
        name = "epc"
    elif name in ("inputQuantity", "outputQuantity", "childQuantity") or (name == "quantity" and node.children):
        name = "quantityElement"
    return _Node(name, node.value, children, node.pair)


# --- nodes to the pre-hash string ------------------------------------------------------------------------------------


def _ordered(children: list[_Node], order: Order) -> str:
    """The children named in `order`, in that order (same-named ones sorted), then the extensions gathered here;
    what is used up is removed from `children`, so the rest can be hashed generically."""
    extensions = _extensions(children)
    named: dict[str, list[_Node]] = {}
    for child in children:
        named.setdefault(child.name, []).append(child)
    text = ""
    used: set[int] = set()
    for name, sub_order in order:
        values = []
        for child in named.get(name, ()):
            rendered = _rendered(child, sub_order)
            if rendered:
                values.append(rendered)
            if not child.children:
                used.add(id(child))
        text += "".join(sorted(values))
    # Taken out in one pass: a `list.remove` per node searched the list (comparing nodes field by field) each time,
    # quadratic: 8,000 used leaves behind 8,000 other nodes cost 12 s, a 4 MiB document about two hours.
    if used:
        children[:] = [child for child in children if id(child) not in used]
    return text + (_generic(extensions) if extensions else "")


def _extensions(children: list[_Node]) -> list[_Node]:
    """User extensions inside a structure with an extension point; at event level they stay for the generic part."""
    if len(children) <= 1 or any("eventTime" in c.name or "action" in c.name for c in children):
        return []
    found = [c for c in children if "{" in c.name and "/}" in c.name]
    if found:
        children[:] = [c for c in children if not ("{" in c.name and "/}" in c.name)]  # one pass: see _ordered
    return found


def _rendered(node: _Node, sub_order: Order | None) -> str:
    nested = _ordered(node.children, sub_order) if sub_order else ""
    text = node.value.strip()
    if text:
        lowered = node.name.lower()
        text = "=" + (_utc_millis(text) if "time" in lowered and "offset" not in lowered else _canonical_value(text))
    return node.name + text + nested if text or nested else ""


def _generic(children: list[_Node]) -> str:
    parts = []
    for child in children:
        if child.pair:
            parts.append(_generic(child.children))
            continue
        text = child.value.strip()
        parts.append(child.name + ("=" + _canonical_value(text) if text else "") + _generic(child.children))
    if len(children) > 1 and not any(child.name in TYPED_ENTRIES for child in children):
        parts.sort()
    return "".join(parts)


# --- values ----------------------------------------------------------------------------------------------------------


def _canonical_value(text: str) -> str:
    for urn, web in URN_VOCABULARY.items():
        text = text.replace(urn, web)
    text = _number(text)
    return canonical_digital_link(text) or text


def _number(text: str) -> str:
    """A number without trailing zeros (`26.0` -> `26`, `0.50` -> `0.5`); anything else as is."""
    try:
        number = float(text)
        return str(int(number)) if number.is_integer() else str(number)
    except (ValueError, OverflowError):
        return text


def _utc_millis(text: str) -> str:
    """A timestamp in UTC to the millisecond (half to even, as the reference generator rounds). One without an offset
    is read as UTC: the reference reads it in the machine's zone, which would give one event two hashes."""
    try:
        moment = datetime.fromisoformat(text)
        moment = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
        moment = moment.replace(microsecond=0) + timedelta(microseconds=round(moment.microsecond, -3))
    except (ValueError, OverflowError):
        return text
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
