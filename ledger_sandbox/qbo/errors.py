"""QuickBooks Online error bodies: the ``Fault`` envelope and the error codes the emulator uses.

Shape: IntuitResponse/Fault of IntuitRestServiceDef.xsd rendered as JSON, i.e.
``{"Fault": {"Error": [{"Message", "Detail", "code", "element"}], "type": ...}, "time": ...}``.
Codes and messages follow Intuit's error-code list
(https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/error-codes).
The 401 answer is the lower-case envelope Intuit's gateway sends (seen verbatim in
python-quickbooks issue #250), not the XSD one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..core import Response, SandboxError


def qbo_time(moment: dt.datetime) -> str:
    """Render a timestamp as Intuit does (``2026-01-02T03:04:05.678+00:00``)."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def error_entry(code: str | int, message: str, detail: str = "", element: str = "") -> dict:
    """One ``Error`` element of a Fault."""
    entry: dict[str, Any] = {"Message": message, "Detail": detail, "code": str(code)}
    if element:
        entry["element"] = element
    return entry


def fault_body(fault_type: str, errors: list[dict], moment: dt.datetime) -> dict:
    """A complete IntuitResponse carrying one Fault."""
    return {"Fault": {"Error": errors, "type": fault_type}, "time": qbo_time(moment)}


class QboFault(SandboxError):
    """A Fault raised by a handler: HTTP status, Fault type and its errors."""

    def __init__(self, status: int, fault_type: str, errors: list[dict]):
        super().__init__(status, errors[0]["Message"] if errors else fault_type, kind=fault_type)
        self.fault_type = fault_type
        self.errors = errors

    def fault(self) -> dict:
        """The Fault element alone (used inside BatchItemResponse)."""
        return {"Error": self.errors, "type": self.fault_type}

    def response(self, moment: dt.datetime) -> Response:
        """The complete HTTP answer."""
        return Response(self.status, fault_body(self.fault_type, self.errors, moment))


def validation(code: str | int, message: str, detail: str = "", element: str = "",
               status: int = 400) -> QboFault:
    """A ValidationFault with a single error."""
    return QboFault(status, "ValidationFault", [error_entry(code, message, detail, element)])


def not_found(entity: str, entity_id: str) -> QboFault:
    """Code 610: the object does not exist (or was deleted)."""
    return validation(
        610, "Object Not Found",
        "Object Not Found : Something you're trying to use has been made inactive. Check the "
        f"fields with accounts, customers, items, vendors or employees. ({entity} Id={entity_id})",
    )


def stale(entity: str, entity_id: str) -> QboFault:
    """Code 5010: the SyncToken sent is not the current one (optimistic locking)."""
    return validation(
        5010, "Stale Object Error",
        "Stale Object Error : You and sandbox were working on this at the same time. sandbox "
        f"finished before you did, so your work was not saved. ({entity} Id={entity_id})",
    )


def duplicate_name(existing_id: str) -> QboFault:
    """Code 6240: another list entity already uses this (display) name."""
    return validation(
        6240, "Duplicate Name Exists Error",
        f"The name supplied already exists. : Id={existing_id}",
    )


def required(element: str) -> QboFault:
    """Code 2020: a required property is missing."""
    return validation(
        2020, "Required param missing, need to supply the required value for the API",
        f"Required parameter {element} is missing in the request", element,
    )


def invalid_reference(element: str, value: Any) -> QboFault:
    """Code 2500: a reference points at nothing."""
    return validation(
        2500, "Invalid Reference Id",
        f"Invalid Reference Id : {element} {value!r} does not exist or is inactive", element,
    )


def business(detail: str, element: str = "") -> QboFault:
    """Code 6000: a business rule refuses the request."""
    return validation(
        6000, "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}", element,
    )


def invalid_property(detail: str, element: str = "") -> QboFault:
    """Code 2010: the request has an invalid or unsupported property/value."""
    return validation(2010, "Request has invalid or unsupported property", detail, element)


def unsupported(operation: str, entity: str) -> QboFault:
    """Code 500: the operation does not exist for this entity."""
    return validation(500, "Unsupported Operation",
                      f"Operation {operation} is not supported for {entity}.")


def query_error(kind: str, detail: str) -> QboFault:
    """Codes 4000/4001: the query parser or validator refused the statement."""
    if kind == "parse":
        return validation(4000, "Error parsing query", detail)
    return validation(4001, "Invalid query", detail)


def bad_request(detail: str) -> QboFault:
    """A request body that is not valid JSON for the entity (code 2010)."""
    return invalid_property(detail)


def throttled(moment: dt.datetime) -> Response:
    """HTTP 429 as Intuit sends it when a realm's per-minute/second/batch/concurrent limit hit."""
    errors = [error_entry(3001, "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                          "The request limit was reached.  Try again later")]
    return Response(429, fault_body("SERVICE", errors, moment))


def throttled_xml(moment: dt.datetime) -> Response:
    """The same 429 in XML: what Intuit's gateway actually answers even to Accept: json."""
    body = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<IntuitResponse time="{qbo_time(moment)}" xmlns="http://schema.intuit.com/finance/v3">'
        '<Fault type="SERVICE"><Error code="3001">'
        "<Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>"
        "<Detail>The request limit was reached.  Try again later</Detail>"
        "</Error></Fault></IntuitResponse>"
    )
    return Response(429, body.encode("utf-8"), {"Content-Type": "application/xml"})


def authentication_failed(detail: str, moment: dt.datetime) -> Response:
    """HTTP 401 for a missing, malformed, expired or revoked access token."""
    body = {
        "warnings": None, "intuitObject": None,
        "fault": {"error": [{
            "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
            "detail": detail, "code": "3200", "element": None,
        }], "type": "AUTHENTICATION"},
        "report": None, "queryResponse": None, "batchItemResponse": [],
        "attachableResponse": [], "syncErrorResponse": None, "requestId": None,
        "time": int(moment.timestamp() * 1000), "status": None, "cdcresponse": [],
    }
    return Response(401, body, {"WWW-Authenticate": 'Bearer realm="Intuit"'})


def authorization_failed(moment: dt.datetime) -> Response:
    """HTTP 403 when a valid token is used for a realm it was not granted for."""
    body = {
        "warnings": None, "intuitObject": None,
        "fault": {"error": [{
            "message": "message=AuthorizationFailed; errorCode=003100; statusCode=403",
            "detail": None, "code": "3100", "element": None,
        }], "type": "SERVICE"},
        "report": None, "queryResponse": None, "batchItemResponse": [],
        "attachableResponse": [], "syncErrorResponse": None, "requestId": None,
        "time": int(moment.timestamp() * 1000), "status": None, "cdcresponse": [],
    }
    return Response(403, body)


def system_fault(status: int, moment: dt.datetime) -> Response:
    """An injected server failure (500/503) as a SystemFault, code 10000."""
    message = ("An application error has occurred while processing your request"
               if status == 500 else "Service Unavailable")
    errors = [error_entry(10000, message,
                          f"System Failure Error: injected HTTP {status} (sandbox fault)")]
    return Response(status, fault_body("SystemFault", errors, moment))
