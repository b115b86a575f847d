"""runtime.logs: MMHUB_LOG_FORMAT=json gives one JSON object per line with the record's place where it applies."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.logs import JsonFormatter, log_format, logging_config, logging_context, where


def lines(emit: object) -> list[dict[str, object]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("mmhub.test-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        emit(logger)  # type: ignore[operator]
    finally:
        logger.removeHandler(handler)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_utc_time_level_logger_and_message() -> None:
    [line] = lines(lambda log: log.info("hello %s\nworld", "there"))
    assert line["message"] == "hello there\nworld" and line["level"] == "INFO" and line["logger"] == "mmhub.test-logs"
    assert str(line["time"]).endswith("Z") and "+00:00" not in str(line["time"])
    assert "shipment_id" not in line and "offset" not in line


def test_the_records_place_from_extra_and_from_the_context() -> None:
    def emit(log: logging.Logger) -> None:
        log.warning("set aside", extra=where("hub.events", 3, 42, "SHP-1"))
        with logging_context(shipment_id="SHP-2", topic="hub.shipment.status"):
            log.info("inside")
            log.info("own place", extra=where(offset=7))
        log.info("after")

    first, inside, own, after = lines(emit)
    assert (first["shipment_id"], first["topic"], first["partition"], first["offset"]) == ("SHP-1", "hub.events", 3, 42)
    assert (inside["shipment_id"], inside["topic"]) == ("SHP-2", "hub.shipment.status")
    assert own["offset"] == 7 and own["shipment_id"] == "SHP-2"
    assert "shipment_id" not in after


def test_an_exception_is_in_the_line() -> None:
    def emit(log: logging.Logger) -> None:
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")

    [line] = lines(emit)
    assert "ValueError: boom" in str(line["exc_info"])


def test_the_format_is_chosen_by_mmhub_log_format() -> None:
    assert log_format({}) == "text"
    assert log_format({"MMHUB_LOG_FORMAT": "JSON"}) == "json"
    with pytest.raises(ValueError, match="MMHUB_LOG_FORMAT"):
        log_format({"MMHUB_LOG_FORMAT": "xml"})
    assert logging_config("info", {"MMHUB_LOG_FORMAT": "json"})["formatters"]["mmhub"] == {"()": JsonFormatter}
    assert "format" in logging_config("info", {})["formatters"]["mmhub"]


def test_a_process_set_up_for_json_logs_json_lines_on_stderr() -> None:
    code = (
        "import logging; from runtime.logs import setup_logging, where; setup_logging('info');"
        "logging.getLogger('mmhub.x').warning('bad %s', 'record', extra=where('hub.events', 1, 9, 'SHP-9'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env={"MMHUB_LOG_FORMAT": "json", "PATH": ""}, capture_output=True, text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    [line] = [json.loads(text) for text in done.stderr.splitlines()]
    assert (line["message"], line["level"], line["shipment_id"], line["offset"]) == ("bad record", "WARNING", "SHP-9", 9)
