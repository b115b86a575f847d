"""The standards' own published examples (../shared/conformance, beside the repository; README there says where each
file comes from): the CBV 2.0 event-hash vectors all match, and every example file is either accepted or rejected
with the reason this test names."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from connectors.epcis.parse import event_hashes
from connectors.formats import FORMATS
from schemas.rejection import Rejection

ROOT = Path(__file__).resolve().parents[3]
# CI checks the corpus out beside the clone; MMHUB_CONFORMANCE points elsewhere (e.g. from a git worktree).
CONFORMANCE = Path(os.environ.get("MMHUB_CONFORMANCE") or ROOT.parent / "shared" / "conformance")
if not CONFORMANCE.is_dir():
    pytest.skip(
        f"the conformance corpus is not at {CONFORMANCE} (check it out beside the repository, or set MMHUB_CONFORMANCE)",
        allow_module_level=True,
    )

FORMAT_OF_FOLDER = {
    "epcis": "epcis",
    "epcis-event-hash": "epcis",
    "dcsa-tnt-2.2": "dcsa",
    "dcsa-tnt-3.0": "dcsa",
    "dcsa-tnt-3.0-beta1": "dcsa",
    "iata-one-record": "onerecord",
}
HASH_VECTORS = sorted((CONFORMANCE / "epcis-event-hash").glob("*.jsonld"))


def test_the_corpus_has_the_hash_vectors() -> None:
    assert len(HASH_VECTORS) == 22


@pytest.mark.parametrize("path", HASH_VECTORS, ids=lambda path: path.name)
def test_every_cbv_event_hash_vector_matches_the_reference_generator(path: Path) -> None:
    expected = path.with_suffix(".hashes").read_text().split()
    assert event_hashes(orjson.loads(path.read_bytes())) == expected


# Why a file (or one event in it) is rejected: a part of the reason the parser gives.
NOT_JSON = "not valid UTF-8 JSON"  # the specifications (YAML), the hash vectors' .hashes and .prehashes, a broken example
NOT_EPCIS = "'type' is None: expected an EPCISDocument or one EPCIS event"  # the EPCIS JSON Schema
NO_REFERENCE = "names nothing the hub can find the shipment by"  # EPCIS: no container, SSCC, SGLN or transaction
NOT_TRACKING = "does not report transport status"  # EPCIS TransformationEvent, AssociationEvent
BETA_1 = "a DCSA T&T 3.0.0-Beta-1 event ({metadata, payload}) is not read"
NO_EVENT_ID = "eventID is required"  # DCSA's negative samples
EVENT_ID_NOT_TEXT = "eventID must be a non-empty string, got a number"
NOT_DCSA = "not a DCSA event"  # events wrapped in {"someEvents": [...]}
NO_DCSA_REFERENCE = "names no equipment, booking or transport document reference"
CONTAINER_CHECK_DIGIT = "fails its ISO 6346 check digit"
IMO_CHECK_DIGIT = "fails its IMO check digit"  # tnt-300-response's vessel 7654321
NO_EVENT = "the payload holds no LogisticsEvent"  # ONE Record objects other than events
NO_WAYBILL = "eventFor does not carry an air waybill"  # the event names a Shipment the payload does not describe
SEVERAL_TARGETS = "eventFor has 3 values; one is expected"

# file -> (events accepted, why each rejected event or payload was rejected, in order)
EXPECTED: dict[str, tuple[int, list[str]]] = {
    "dcsa-tnt-2.2/TNT_v2.2.0-resolved.yaml": (0, [NOT_JSON]),
    "dcsa-tnt-2.2/tnt-2.2-event-01-transport.json": (1, []),
    "dcsa-tnt-2.2/tnt-2.2-event-02-shipment.json": (1, []),
    "dcsa-tnt-2.2/tnt-2.2-event-03-equipment.json": (1, []),
    "dcsa-tnt-2.2/tnt-2.2-event-04-transport.json": (1, []),
    "dcsa-tnt-2.2/tnt-2.2-event-05-shipment.json": (1, []),
    "dcsa-tnt-2.2/tnt-2.2-event-06-equipment.json": (1, []),
    "dcsa-tnt-2.2/tnt-2.2-event-07-shipment.json": (1, []),
    "dcsa-tnt-2.2/tnt-220-response-wrong-attribute-values.json": (0, [NO_EVENT_ID, NO_DCSA_REFERENCE, CONTAINER_CHECK_DIGIT]),
    "dcsa-tnt-2.2/tnt-220-response-wrong-date-times.json": (0, [NO_EVENT_ID, NO_EVENT_ID, NO_EVENT_ID, NO_EVENT_ID, NO_EVENT_ID, NO_EVENT_ID, NO_EVENT_ID]),
    "dcsa-tnt-2.2/tnt-220-response-wrong-event-ids.json": (6, [EVENT_ID_NOT_TEXT]),
    "dcsa-tnt-2.2/tnt-220-response-wrong-structure.json": (0, [NOT_DCSA, NOT_DCSA]),
    "dcsa-tnt-2.2/tnt-220-response.json": (7, []),
    "dcsa-tnt-3.0/TNT_v3.0.0.yaml": (0, [NOT_JSON]),
    "dcsa-tnt-3.0/tnt-300-request-equipment.json": (1, []),
    "dcsa-tnt-3.0/tnt-300-request-iot.json": (1, []),
    "dcsa-tnt-3.0/tnt-300-request-reefer.json": (1, []),
    "dcsa-tnt-3.0/tnt-300-request-shipment.json": (1, []),
    "dcsa-tnt-3.0/tnt-300-request-transport.json": (1, []),
    "dcsa-tnt-3.0/tnt-300-response.json": (4, [IMO_CHECK_DIGIT]),
    "dcsa-tnt-3.0-beta1/tnt-3.0.0-beta1-bookingExample-01-shipment.json": (0, [BETA_1]),
    "dcsa-tnt-3.0-beta1/tnt-3.0.0-beta1-bookingExample-02-equipment.json": (0, [BETA_1]),
    "dcsa-tnt-3.0-beta1/tnt-3.0.0-beta1-dropPickExample-01-equipment.json": (0, [BETA_1]),
    "dcsa-tnt-3.0-beta1/tnt-3.0.0-beta1-dropPickExample-02-equipment.json": (0, [BETA_1]),
    "dcsa-tnt-3.0-beta1/tnt-3.0.0-beta1-railTransportExample-01-transport.json": (0, [BETA_1]),
    "dcsa-tnt-3.0-beta1/tnt-3.0.0-beta1-retractedTransportEventExample-01-transport.json": (0, [BETA_1]),
    "dcsa-tnt-3.0-beta1/tnt-3.0.0-beta1-shipmentEventExample-01-shipment.json": (0, [BETA_1]),
    "dcsa-tnt-3.0-beta1/tnt-3.0.0-beta1-transportEventListExample-01-transport.json": (0, [BETA_1]),
    "dcsa-tnt-3.0-beta1/tnt-3.0.0-beta1-transportEventListExample-02-transport.json": (0, [BETA_1]),
    "dcsa-tnt-3.0-beta1/tnt-3.0.0-beta1-transshipmentExample-01-equipment.json": (0, [BETA_1]),
    "dcsa-tnt-3.0-beta1/tnt-3.0.0-beta1-truckTransportExample-01-transport.json": (0, [BETA_1]),
    "dcsa-tnt-3.0-beta1/tnt_v3.0.0-Beta-1.yaml": (0, [NOT_JSON]),
    "epcis/AssociationEvent-a.jsonld": (0, [NOT_TRACKING]),
    "epcis/EPCIS-JSON-Schema.json": (0, [NOT_EPCIS]),
    "epcis/EPCISQueryDocument.jsonld": (2, []),
    "epcis/ErrorDeclarationAndCorrectiveEvent.jsonld": (0, [NOT_TRACKING, NOT_TRACKING]),
    "epcis/Example-TransactionEvents-2020_07_03y.jsonld": (2, []),
    "epcis/Example-Type-sourceOrDestination,measurement,bizTransaction.jsonld": (0, [NOT_TRACKING]),
    "epcis/Example_9.6.1-ObjectEvent-with-error-declaration.jsonld": (2, []),
    "epcis/Example_9.6.1-ObjectEvent.jsonld": (2, []),
    "epcis/Example_9.6.1-ObjectEventWithDigitalLink.jsonld": (2, []),
    "epcis/Example_9.6.1-with-comment.jsonld": (2, []),
    "epcis/Example_9.6.2-ObjectEvent.jsonld": (1, []),
    "epcis/Example_9.6.3-AggregationEvent.jsonld": (1, []),
    "epcis/Example_9.6.4-TransformationEvent.jsonld": (0, [NOT_TRACKING]),
    "epcis/PersistentDisposition-example.jsonld": (2, []),
    "epcis/SensorDataExample1.jsonld": (1, []),
    "epcis/SensorDataExample12.jsonld": (0, [NOT_TRACKING]),
    "epcis/SensorDataExample4.jsonld": (1, []),
    "epcis/SensorDataExample8.jsonld": (1, []),
    "epcis/SensorDataExample9.jsonld": (1, []),
    "epcis/aggregation_event_all_possible_fields.jsonld": (1, []),
    "epcis/association_event_all_possible_fields.jsonld": (0, [NOT_TRACKING]),
    "epcis/object_event_all_possible_fields.jsonld": (1, []),
    "epcis/transaction_event_all_possible_fields.jsonld": (1, []),
    "epcis/transformation_event_all_possible_fields.jsonld": (0, [NOT_TRACKING]),
    "epcis-event-hash/CertificationInfoAndSensorReportWithCRS.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/CertificationInfoAndSensorReportWithCRS.jsonld": (1, []),
    "epcis-event-hash/CertificationInfoAndSensorReportWithCRS.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/ReferenceEventHashAlgorithm.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/ReferenceEventHashAlgorithm.jsonld": (1, []),
    "epcis-event-hash/ReferenceEventHashAlgorithm.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/ReferenceEventHashAlgorithm2.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/ReferenceEventHashAlgorithm2.jsonld": (1, []),
    "epcis-event-hash/ReferenceEventHashAlgorithm2.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/ReferenceEventHashAlgorithm3.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/ReferenceEventHashAlgorithm3.jsonld": (1, []),
    "epcis-event-hash/ReferenceEventHashAlgorithm3.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/TimeStampRoundOff.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/TimeStampRoundOff.jsonld": (3, []),
    "epcis-event-hash/TimeStampRoundOff.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocHavingEventWithComment.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocHavingEventWithComment.jsonld": (1, []),
    "epcis-event-hash/epcisDocHavingEventWithIgnoreFields.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocHavingEventWithIgnoreFields.jsonld": (2, []),
    "epcis-event-hash/epcisDocHavingEventWithIgnoreFields.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithAllGS1Keys.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithAllGS1Keys.jsonld": (1, []),
    "epcis-event-hash/epcisDocWithAllGS1Keys.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithCustomSchemaInContext.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithCustomSchemaInContext.jsonld": (2, []),
    "epcis-event-hash/epcisDocWithCustomSchemaInContext.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithDefaultSchemaInContext.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithDefaultSchemaInContext.jsonld": (2, []),
    "epcis-event-hash/epcisDocWithDefaultSchemaInContext.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithSensorComponent.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithSensorComponent.jsonld": (1, []),
    "epcis-event-hash/epcisDocWithSensorComponent.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithSensorDataObjectEvent.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithSensorDataObjectEvent.jsonld": (1, []),
    "epcis-event-hash/epcisDocWithSensorDataObjectEvent.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithShippingAndTransportingEvent.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithShippingAndTransportingEvent.jsonld": (2, []),
    "epcis-event-hash/epcisDocWithShippingAndTransportingEvent.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithSingleEvent.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithSingleEvent.jsonld": (1, []),
    "epcis-event-hash/epcisDocWithSingleEvent.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithVariousEventTypes.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithVariousEventTypes.jsonld": (10, [NOT_TRACKING, NOT_TRACKING, NOT_TRACKING]),
    "epcis-event-hash/epcisDocWithVariousEventTypes.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithXMLstartTagAndErrorDeclaration.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisDocWithXMLstartTagAndErrorDeclaration.jsonld": (0, [NOT_TRACKING]),
    "epcis-event-hash/epcisDocWithXMLstartTagAndErrorDeclaration.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisEventWithCURIEs.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisEventWithCURIEs.jsonld": (1, []),
    "epcis-event-hash/epcisEventWithCURIEs.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisQueryDocHavingEventWithIgnoreFields.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisQueryDocHavingEventWithIgnoreFields.jsonld": (2, []),
    "epcis-event-hash/epcisQueryDocHavingEventWithIgnoreFields.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisQueryDocument.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/epcisQueryDocument.jsonld": (2, []),
    "epcis-event-hash/epcisQueryDocument.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/epclist_normalisation.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/epclist_normalisation.jsonld": (1, []),
    "epcis-event-hash/epclist_normalisation.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/persistentDisposition.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/persistentDisposition.jsonld": (2, []),
    "epcis-event-hash/persistentDisposition.prehashes": (0, [NOT_JSON]),
    "epcis-event-hash/ralfsChaosExample.hashes": (0, [NOT_JSON]),
    "epcis-event-hash/ralfsChaosExample.jsonld": (1, []),
    "epcis-event-hash/ralfsChaosExample.prehashes": (0, [NOT_JSON]),
    "iata-one-record/CIMP-Example1.json": (0, [NOT_JSON]),
    "iata-one-record/Company.json": (0, [NO_EVENT]),
    "iata-one-record/Error_400.json": (0, [NO_EVENT]),
    "iata-one-record/LogisticsEvent.json": (0, [NO_WAYBILL]),
    "iata-one-record/LogisticsEvent_with_id.json": (0, [NO_WAYBILL]),
    "iata-one-record/LogisticsEvents_filtered_list.json": (0, [NO_EVENT]),
    "iata-one-record/LogisticsEvents_list.json": (0, [NO_EVENT]),
    "iata-one-record/MultipleEvents_example1.json": (0, [SEVERAL_TARGETS]),
    "iata-one-record/Notification_example1.json": (0, [NO_EVENT]),
    "iata-one-record/Notification_example2.json": (0, [NO_EVENT]),
    "iata-one-record/Piece.json": (0, [NO_EVENT]),
    "iata-one-record/Piece_with_id.json": (0, [NO_EVENT]),
    "iata-one-record/Piece_with_id.rev3.json": (0, [NO_EVENT]),
    "iata-one-record/Sensor.compacted.json": (0, [NO_EVENT]),
    "iata-one-record/Sensor.expanded.json": (0, [NO_EVENT]),
    "iata-one-record/ServerInformation.json": (0, [NO_EVENT]),
    "iata-one-record/Shipment_with_Piece.embedded.json": (0, [NO_EVENT]),
    "iata-one-record/Shipment_with_Piece.json": (0, [NO_EVENT]),
    "iata-one-record/code-lists-other-linked-data-code-list.json": (0, [NO_EVENT]),
}


def corpus_files() -> list[str]:
    return sorted(
        str(path.relative_to(CONFORMANCE))
        for path in CONFORMANCE.rglob("*")
        if path.is_file() and path.parent != CONFORMANCE and path.parent.name != "LICENSES"
    )


def test_every_file_of_the_corpus_has_an_expectation() -> None:
    assert corpus_files() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_example_is_accepted_or_rejected_for_the_reason_named(name: str) -> None:
    path = CONFORMANCE / name
    results = FORMATS[FORMAT_OF_FOLDER[path.parent.name]](path.read_bytes(), "carrier.conformance")
    accepted, reasons = EXPECTED[name]
    refused = [result for result in results if isinstance(result, Rejection)]
    assert len(results) - len(refused) == accepted
    assert len(refused) == len(reasons), [r.reason for r in refused]
    for rejection, why in zip(refused, reasons):
        assert why in rejection.reason, rejection.reason
