"""xero.errors: one table for classify(), then xero-python's real exceptions."""

from __future__ import annotations

import http.client
import json
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import urllib3
from urllib3.exceptions import (
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from xero_python.accounting import AccountingApi, Invoices
from xero_python.accounting.api.exception_handler import (
    translate_status_exception as accounting_translate,
)
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.oauth2 import OAuth2Token
from xero_python.exceptions import (
    AccessTokenExpiredError,
    AccountingBadRequestException,
    ApiException,
    ApiSSLException,
    HTTPStatusException,
    NotFoundException,
    RateLimitException,
)
from xero_python.identity.api.exception_handler import (
    translate_status_exception as identity_translate,
)
from xero_python.rest import RESTResponse

from xero.errors import (
    BACKOFF_CAP,
    SDK_ERRORS,
    DailyLimitReached,
    FixData,
    ReconnectNeeded,
    RetryLater,
    TokenExpired,
    Uncertain,
    XeroFailure,
    backoff,
    classify,
    from_sdk_exception,
)


def top() -> float:
    """Jitter draw at its maximum: backoff() returns the full delay (5, 20, 80...)."""
    return 1.0


VALIDATION = {
    "ErrorNumber": 10,
    "Type": "ValidationException",
    "Message": "A validation exception occurred",
    "Elements": [
        {"InvoiceID": "0", "ValidationErrors": [{"Message": "Email address must be valid."}],
         "Contact": {"ValidationErrors": [{"Message": "The contact name is too long."}]}},
        {"InvoiceID": "1", "ValidationErrors": [{"Message": "Email address must be valid."}],
         "LineItems": [{"ValidationErrors": [{"Message": "Account code '999' is not a "
                                                         "valid code."}]}]},
    ],
}
QUERY_PARSE = {"ErrorNumber": 16, "Type": "QueryParseException",
               "Message": "No property or field 'Nope' exists"}
EXPIRED: dict[str, Any] = {"Type": None, "Title": "Unauthorized", "Status": 401,
           "Detail": "TokenExpired: token expired at 04/09/2023 05:16:59", "Extensions": {}}
UNSUCCESSFUL: dict[str, Any] = {"Type": None, "Title": "Forbidden", "Status": 403,
                "Detail": "AuthenticationUnsuccessful", "Extensions": {}}
PLAIN = "Unspecified"


def case(id_: str, expected: type[XeroFailure], *, status: int | None = None,
         headers: dict[str, str] | None = None, body: Any = None,
         exception: BaseException | None = None, method: str = "GET", attempt: int = 1,
         **fields: Any) -> Any:
    """One row: the inputs of classify(), the expected type and attribute values."""
    inputs = {"status": status, "headers": headers, "body": body, "exception": exception,
              "method": method, "attempt": attempt}
    return pytest.param(inputs, expected, fields, id=id_)


TABLE = [
    # 429: X-Rate-Limit-Problem and Retry-After (platform-facts "Limits")
    case("429-minute", RetryLater, status=429,
         headers={"X-Rate-Limit-Problem": "minute", "Retry-After": "17"}, seconds=17.0),
    case("429-day", DailyLimitReached, status=429,
         headers={"x-rate-limit-problem": "day", "retry-after": "40000"}, seconds=40000.0),
    case("429-day-no-retry-after", DailyLimitReached, status=429,
         headers={"X-Rate-Limit-Problem": "day"}, seconds=3600.0),
    case("429-appminute", RetryLater, status=429,
         headers={"X-Rate-Limit-Problem": "appminute"}, seconds=60.0),
    case("429-concurrent", RetryLater, status=429,
         headers={"X-Rate-Limit-Problem": "concurrent"}, attempt=2, seconds=4.0),
    case("429-bare", RetryLater, status=429, body=b"Too many requests", seconds=60.0),
    case("429-on-put-is-not-uncertain", RetryLater, status=429, method="PUT",
         headers={"X-Rate-Limit-Problem": "minute", "Retry-After": "3"}, seconds=3.0),
    # 400: a person fixes the data
    case("400-validation", FixData, status=400, body=json.dumps(VALIDATION).encode(),
         error_type="ValidationException",
         messages=["Email address must be valid.", "The contact name is too long.",
                   "Account code '999' is not a valid code."]),
    case("400-validation-dict", FixData, status=400, method="PUT", body=VALIDATION,
         error_type="ValidationException"),
    case("400-no-elements", FixData, status=400,
         body={"ErrorNumber": 10, "Type": "ValidationException", "Message": "Bad date"},
         messages=["Bad date"]),
    case("400-query-parse", FixData, status=400, body=json.dumps(QUERY_PARSE),
         error_type="QueryParseException", messages=["No property or field 'Nope' exists"]),
    case("400-text", FixData, status=400, body=b"  Invalid request  ",
         messages=["Invalid request"], error_type=None),
    case("400-empty", FixData, status=400, body=b"",
         messages=["Xero refused the request (HTTP 400)"]),
    case("400-invalid-grant", ReconnectNeeded, status=400, method="POST",
         body=b'{"error":"invalid_grant"}'),
    # auth
    case("401-expired", TokenExpired, status=401, body=json.dumps(EXPIRED), seconds=0.0),
    case("401-expired-www-authenticate", TokenExpired, status=401,
         headers={"WWW-Authenticate": 'Bearer error="invalid_token", '
                                      'error_description="The access token expired"'}),
    case("401-expired-again-backs-off", TokenExpired, status=401,
         body=json.dumps(EXPIRED), attempt=3, seconds=80.0),
    case("401-unsuccessful", ReconnectNeeded, status=401,
         body={**UNSUCCESSFUL, "Status": 401, "Title": "Unauthorized"}),
    case("401-empty", ReconnectNeeded, status=401),
    case("403", ReconnectNeeded, status=403, method="PUT", body=json.dumps(UNSUCCESSFUL)),
    # other 4xx
    case("404", FixData, status=404, error_type="NotFound"),
    case("404-text", FixData, status=404, body=b"The resource you're looking for cannot "
         b"be found", messages=["The resource you're looking for cannot be found"]),
    case("408", RetryLater, status=408, method="POST", seconds=5.0),
    case("413", FixData, status=413, messages=["Xero refused the request (HTTP 413)"]),
    # 5xx: reads retry; writes may have been applied
    case("500-get", RetryLater, status=500, seconds=5.0),
    case("500-get-attempt-3", RetryLater, status=500, attempt=3, seconds=80.0),
    case("500-get-attempt-99", RetryLater, status=500, attempt=99, seconds=BACKOFF_CAP),
    case("500-post", Uncertain, status=500, method="POST", seconds=5.0),
    case("502-put", Uncertain, status=502, method="put"),
    case("503-offline-get", RetryLater, status=503, headers={"Retry-After": "120"},
         body=b"The Xero API is temporarily unavailable", seconds=120.0,
         reason="Xero failed with HTTP 503: The Xero API is temporarily unavailable"),
    case("503-put", Uncertain, status=503, method="PUT", body=b"Organisation offline"),
    case("501", FixData, status=501, method="POST", error_type="NotImplemented"),
    # no response at all
    case("read-timeout-get", RetryLater, method="GET", seconds=5.0,
         exception=ReadTimeoutError(None, "/Invoices", "Read timed out.")),  # type: ignore[arg-type]
    case("read-timeout-put", Uncertain, method="PUT",
         exception=ReadTimeoutError(None, "/Invoices", "Read timed out.")),  # type: ignore[arg-type]
    case("dropped-post", Uncertain, method="POST", exception=ProtocolError(
        "Connection aborted.", http.client.RemoteDisconnected("closed"))),
    case("remote-disconnected-put", Uncertain, method="PUT",
         exception=http.client.RemoteDisconnected("closed")),
    case("incomplete-read-get", RetryLater, exception=http.client.IncompleteRead(b"{")),
    case("socket-timeout-post", Uncertain, method="POST", exception=TimeoutError("timed out")),
    case("refused-put-not-sent", RetryLater, method="PUT",
         exception=NewConnectionError(None, "Connection refused")),  # type: ignore[arg-type]
    case("os-refused-post-not-sent", RetryLater, method="POST",
         exception=ConnectionRefusedError(111, "refused")),
    case("max-retries-get", RetryLater, exception=MaxRetryError(
        None, "/Invoices", NewConnectionError(None, "refused"))),  # type: ignore[arg-type]
    case("max-retries-put", Uncertain, method="PUT", exception=MaxRetryError(
        None, "/Invoices", NewConnectionError(None, "refused"))),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("inputs", "expected", "fields"), TABLE)
def test_classify(inputs: dict[str, Any], expected: type[XeroFailure],
                  fields: dict[str, Any]) -> None:
    failure = classify(**inputs, rand=top)
    assert type(failure) is expected
    for name, value in fields.items():
        assert getattr(failure, name) == value, name


def test_classify_keeps_the_status_and_reads_well() -> None:
    failure = classify(status=400, headers=None, body=VALIDATION)
    assert failure.status == 400
    assert str(failure).startswith("ValidationException: Email address must be valid.; ")
    later = classify(status=429, headers={"Retry-After": "17"}, body=None)
    assert str(later) == "Xero rate limit reached (unspecified) (retry in 17.0 s)"


@pytest.mark.parametrize("failure", [
    RetryLater(3, "why", status=500), Uncertain(1, "maybe"), DailyLimitReached(9, "day"),
    TokenExpired(0, "expired"), FixData(["a", "b"], error_type="T", status=400),
    ReconnectNeeded("gone", status=403),
])
def test_failures_pickle(failure: XeroFailure) -> None:
    copy = pickle.loads(pickle.dumps(failure))
    assert (type(copy), str(copy), copy.status) == (type(failure), str(failure), failure.status)


def test_classify_refuses_what_is_not_a_failure() -> None:
    with pytest.raises(ValueError):
        classify(status=200, headers=None, body=None)
    with pytest.raises(ValueError):
        classify(status=None, headers=None, body=None)
    with pytest.raises(TypeError):
        classify(status=None, headers=None, body=None, exception=KeyError("bug"))


def test_backoff_is_bounded_and_grows_with_the_attempt() -> None:
    lowest = [backoff(n, rand=lambda: 0.0) for n in range(1, 12)]
    highest = [backoff(n, rand=top) for n in range(1, 12)]
    assert highest[:5] == [5.0, 20.0, 80.0, 320.0, 600.0]
    assert all(low <= high <= BACKOFF_CAP for low, high in zip(lowest, highest, strict=True))
    below_cap = [n for n in range(len(highest) - 1) if highest[n + 1] < BACKOFF_CAP]
    assert below_cap == [0, 1, 2]
    assert all(highest[n] <= lowest[n + 1] for n in below_cap)  # jitter never reorders
    assert all(lowest[n] <= lowest[n + 1] and highest[n] <= highest[n + 1] for n in range(10))
    assert lowest[0] == 2.5
    assert backoff(10**9, rand=top) == BACKOFF_CAP
    assert backoff(0, rand=top) == backoff(1, rand=top)


def test_jitter_spreads_retries() -> None:
    draws = iter([0.0, 0.5, 1.0])
    seconds = []
    for _ in range(3):
        failure = classify(status=503, headers=None, body=None, rand=lambda: next(draws))
        assert isinstance(failure, RetryLater)
        seconds.append(failure.seconds)
    assert seconds == [2.5, 3.75, 5.0]


# --- from_sdk_exception: the SDK's own exception objects -----------------------------------

def sdk_response(status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                 reason: str = "") -> RESTResponse:
    """What xero_python/rest.py wraps: a urllib3 response with the body preloaded."""
    raw = urllib3.HTTPResponse(body=body, headers=headers or {}, status=status,
                               reason=reason, preload_content=True)
    return RESTResponse(raw)


def accounting_error(status: int, body: bytes = b"",
                     headers: dict[str, str] | None = None) -> ApiException:
    """As AccountingApi raises it: rest.py's HTTPStatusException, then translated."""
    error = HTTPStatusException(http_resp=sdk_response(status, body, headers))
    return accounting_translate(error, None, "create_invoices")


def test_sdk_validation_error() -> None:
    exc = accounting_error(400, json.dumps(VALIDATION).encode(),
                           {"Content-Type": "application/json"})
    assert isinstance(exc, AccountingBadRequestException)
    failure = from_sdk_exception(exc, method="PUT")
    assert isinstance(failure, FixData)
    assert failure.messages[0] == exc.reason == "Email address must be valid."


def test_sdk_bad_request_that_is_not_json() -> None:
    exc = accounting_error(400, b"<html>Bad Request</html>")
    with pytest.raises(ValueError):
        exc.status  # noqa: B018 - the SDK's own property parses the body as JSON
    failure = from_sdk_exception(exc)
    assert isinstance(failure, FixData)
    assert failure.messages == ["<html>Bad Request</html>"]


def test_sdk_rate_limit_day() -> None:
    exc = accounting_error(429, headers={"X-Rate-Limit-Problem": "day", "Retry-After": "5000",
                                         "X-DayLimit-Remaining": "0"})
    assert isinstance(exc, RateLimitException) and exc.rate_limit == "day"
    failure = from_sdk_exception(exc, method="PUT")
    assert isinstance(failure, DailyLimitReached) and failure.seconds == 5000


def test_sdk_not_found() -> None:
    exc = accounting_error(404)
    assert isinstance(exc, NotFoundException)
    assert isinstance(from_sdk_exception(exc), FixData)


def test_sdk_server_error_on_a_write() -> None:
    exc = accounting_error(504, b"Gateway Timeout")
    assert type(exc) is HTTPStatusException
    failure = from_sdk_exception(exc, method="POST", attempt=2, rand=top)
    assert isinstance(failure, Uncertain) and failure.seconds == 20.0


def test_sdk_expired_token() -> None:
    exc = accounting_error(401, json.dumps(EXPIRED).encode())
    assert isinstance(from_sdk_exception(exc), TokenExpired)
    assert isinstance(from_sdk_exception(AccessTokenExpiredError("expired")), TokenExpired)
    again = from_sdk_exception(AccessTokenExpiredError("x"), attempt=3, rand=top)
    assert isinstance(again, TokenExpired) and again.seconds == 80.0


def test_sdk_invalid_grant_from_identity() -> None:
    error = HTTPStatusException(http_resp=sdk_response(400, b'{"error":"invalid_grant"}'))
    exc = identity_translate(error, None, "refresh_token")
    failure = from_sdk_exception(exc, method="POST")
    assert isinstance(failure, ReconnectNeeded) and "invalid_grant" in failure.reason


def test_sdk_transport_errors() -> None:
    dropped = ProtocolError("Connection aborted.", http.client.RemoteDisconnected("closed"))
    assert isinstance(from_sdk_exception(dropped, method="PUT"), Uncertain)
    assert type(from_sdk_exception(dropped, method="GET")) is RetryLater
    ssl = ApiSSLException(status=0, reason="SSLError\ncertificate verify failed")
    assert type(from_sdk_exception(ssl)) is RetryLater


def test_sdk_errors_that_are_bugs_are_not_retried() -> None:
    with pytest.raises(TypeError):
        from_sdk_exception(ApiException(status=0, reason="Cannot prepare a request message"))
    with pytest.raises(TypeError):
        from_sdk_exception(AttributeError("typo"))


# --- the SDK over real HTTP on loopback -----------------------------------------------------

class XeroDouble(BaseHTTPRequestHandler):
    """GET answers `get_reply`; PUT and POST read the body, then hang up without a reply."""

    hits: ClassVar[list[str]] = []
    get_reply: ClassVar[tuple[int, dict[str, str], bytes]] = (200, {}, b"{}")

    def log_message(self, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        self.hits.append("GET")
        status, headers, body = self.get_reply
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def hang_up(self) -> None:
        self.hits.append(self.command)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.close_connection = True

    do_PUT = do_POST = hang_up


@pytest.fixture
def xero_double() -> Iterator[tuple[type[XeroDouble], str]]:
    handler = type("Double", (XeroDouble,), {"hits": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_port}/api.xro/2.0"
    server.shutdown()
    server.server_close()


def accounting_api(base_url: str, urllib3_retries: bool) -> AccountingApi:
    token = {"access_token": "a", "refresh_token": "r", "token_type": "Bearer",
             "expires_in": 1800, "expires_at": time.time() + 1800,
             "scope": ["accounting.invoices"]}
    client = ApiClient(Configuration(oauth2_token=OAuth2Token(client_id="c", client_secret="s")),
                       pool_threads=1, oauth2_token_getter=lambda: token,
                       oauth2_token_saver=lambda new: None)
    if not urllib3_retries:
        client.rest_client.pool_manager.connection_pool_kw["retries"] = False
    return AccountingApi(client, base_url=base_url)


def failure_of(call: Callable[[], object], method: str) -> XeroFailure:
    try:
        call()
    except SDK_ERRORS as exc:
        return from_sdk_exception(exc, method=method)
    raise AssertionError("the call succeeded")


def test_sdk_over_http(xero_double: tuple[type[XeroDouble], str]) -> None:
    double, url = xero_double
    api = accounting_api(url, urllib3_retries=False)
    double.get_reply = (400, {"Content-Type": "application/json"}, json.dumps(QUERY_PARSE).encode())
    assert isinstance(failure_of(lambda: api.get_invoices("t"), "GET"), FixData)
    double.get_reply = (429, {"X-Rate-Limit-Problem": "minute", "Retry-After": "17"}, b"")
    limited = failure_of(lambda: api.get_invoices("t"), "GET")
    assert type(limited) is RetryLater and limited.seconds == 17
    assert isinstance(failure_of(lambda: api.create_invoices("t", Invoices(invoices=[])), "PUT"),
                      Uncertain)
    assert isinstance(failure_of(lambda: api.update_or_create_invoices(
        "t", Invoices(invoices=[])), "POST"), Uncertain)
    assert double.hits == ["GET", "GET", "PUT", "POST"]


def test_sdk_default_urllib3_retries_resend_writes_and_429s(
        xero_double: tuple[type[XeroDouble], str]) -> None:
    """xero-python's PoolManager keeps urllib3's Retry(3): a PUT whose connection drops
    after sending is sent 4 times, and a 429 with Retry-After is slept through and
    retried - calls our limiter never sees. Hence MaxRetryError on a write is Uncertain."""
    double, url = xero_double
    api = accounting_api(url, urllib3_retries=True)
    failure = failure_of(lambda: api.create_invoices("t", Invoices(invoices=[])), "PUT")
    assert isinstance(failure, Uncertain)
    double.get_reply = (429, {"X-Rate-Limit-Problem": "minute", "Retry-After": "0"}, b"")
    assert isinstance(failure_of(lambda: api.get_invoices("t"), "GET"), RetryLater)
    assert double.hits == ["PUT"] * 4 + ["GET"] * 4
