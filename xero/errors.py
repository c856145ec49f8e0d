"""Every way a Xero call can fail, translated into a few types of our own.

`classify()` is the one pure function that decides (style point 4); `from_sdk_exception()`
only unpacks xero-python's and urllib3's exceptions into its arguments. The engine acts on
the type:

- `RetryLater(seconds)` - try the same call again later. Short waits may be slept inside
  the call; long ones re-enqueue the job (style point 5). Subtypes:
  `DailyLimitReached` (the day's budget is gone), `TokenExpired` (refresh the access
  token first, then retry - at once for the first tries) and `Uncertain` (the write MAY
  have been applied: look the record up by its Reference before creating it again), with
  `BatchMismatch` for one element of a batch whose answer did not line up (per element).
- `FixData(messages)` - Xero refused the data; a person fixes it (a review item).
- `ReconnectNeeded(reason)` - the grant no longer works; a person connects Xero again.

Facts cited as "platform-facts" are in shared/notes/platform-facts.md; HTTP codes from
developer.xero.com/documentation/api/http-response-codes.
"""

from __future__ import annotations

import http.client
import json
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import urllib3.exceptions
from xero_python.exceptions import AccessTokenExpiredError, ApiException, ApiSSLException

Body = bytes | str | dict[str, Any] | list[Any] | None
Headers = Mapping[str, str] | None

# Methods whose repetition could create a second record. Xero's PUT creates (PUT /Invoices)
# and POST creates-or-updates (platform-facts "Batches"), so neither is idempotent here.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Bounded exponential backoff for outages and transport errors: 5, 20, 80, 320, 600 s...
BACKOFF_BASE = 5.0
BACKOFF_FACTOR = 4.0
BACKOFF_CAP = 600.0
# A 429 "concurrent" clears as soon as one of our calls finishes: back off briefly.
CONCURRENT_BASE = 1.0
CONCURRENT_CAP = 30.0

# Waits when a 429 carries no Retry-After. Xero sends it for minute and day only
# (platform-facts "Limits"); a fixed minute window resets within 60 s. For the day an hour
# is a guess that costs one refused call per hour until the real reset.
DEFAULT_RETRY_AFTER = {"minute": 60.0, "appminute": 60.0, "day": 3600.0, "concurrent": 1.0}
UNKNOWN_PROBLEM_RETRY_AFTER = 60.0

# Attempts rejected as "token expired" that retry at once (after a refresh); later ones
# back off, so a clock or token-store problem cannot become a hot refresh loop. A dead
# refresh token shows up on the refresh itself, as invalid_grant -> ReconnectNeeded.
IMMEDIATE_TOKEN_RETRIES = 2

_NOT_FOUND = "Xero could not find the record (HTTP 404): it may have been deleted in Xero"


# --- the types ----------------------------------------------------------------------------

class XeroFailure(Exception):
    """A Xero call failed; the subclass says what to do about it."""

    status: int | None = None

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        return super().__str__()


class RetryLater(XeroFailure):
    """Nothing a person must do: the same call may succeed after `seconds`.

    `wait_for_attempt` is set when `seconds` is our own backoff rather than Xero's word
    (Retry-After, a limit window): it gives the wait after any try number, so work that
    rode along in a failed batch waits by its own count of tries, not the batch's.
    """

    wait_for_attempt: Callable[[int], float] | None = None

    def __init__(self, seconds: float, reason: str, *, status: int | None = None,
                 wait_for_attempt: Callable[[int], float] | None = None) -> None:
        super().__init__(seconds, reason)
        self.seconds = max(0.0, float(seconds))
        self.reason = reason
        self.status = status
        self.wait_for_attempt = wait_for_attempt

    def describe(self) -> str:
        return f"{self.reason} (retry in {self.seconds:.1f} s)"


class DailyLimitReached(RetryLater):
    """Xero's 5,000 calls/day for this tenant are spent: retry when its window resets."""


class TokenExpired(RetryLater):
    """Xero says the access token expired: refresh it, then retry at once."""


class Uncertain(RetryLater):
    """The write may or may not have reached Xero: look it up before creating it again."""


class BatchMismatch(Uncertain):
    """Xero's answer to a batch did not line up with the request for one element: no
    answer carried its key (fewer elements came back), or several did. The element may or may
    not have been saved, so it is retried later, after a look-up, never guessed at; the other
    elements of the batch go on. `key` is the element's matching key (Name, Reference, id)."""

    def __init__(self, key: str, reason: str, seconds: float = 60.0) -> None:
        super().__init__(seconds, reason)
        self.key = key


class FixData(XeroFailure):
    """Xero refused the request's data; `messages` are Xero's words, for a person."""

    def __init__(self, messages: list[str], *, error_type: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(messages)
        self.messages = list(messages)
        self.error_type = error_type
        self.status = status

    def describe(self) -> str:
        kind = f"{self.error_type}: " if self.error_type else ""
        return kind + "; ".join(self.messages)


class ReconnectNeeded(XeroFailure):
    """The grant no longer reaches the organisation: a person must connect Xero again."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status

    def describe(self) -> str:
        return self.reason


# --- headers ------------------------------------------------------------------------------

def header(headers: Headers, name: str) -> str | None:
    """A header's value by case-insensitive name (plain dicts are case-sensitive)."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return str(value)
    return None


def header_number(headers: Headers, name: str) -> float | None:
    """A numeric header (Retry-After, X-*Limit-Remaining); None if absent or not a number."""
    value = header(headers, name)
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None  # Retry-After may be an HTTP-date in general; Xero sends seconds
    return number if number >= 0 else None


def rate_limit_wait(headers: Headers) -> tuple[str, float]:
    """For a 429: Xero's X-Rate-Limit-Problem (lower case, "" if absent) and the wait."""
    problem = (header(headers, "X-Rate-Limit-Problem") or "").strip().lower()
    retry_after = header_number(headers, "Retry-After")
    if retry_after is None:
        retry_after = DEFAULT_RETRY_AFTER.get(problem, UNKNOWN_PROBLEM_RETRY_AFTER)
    return problem, retry_after


# --- backoff ------------------------------------------------------------------------------

def backoff(attempt: int, *, base: float = BACKOFF_BASE, factor: float = BACKOFF_FACTOR,
            cap: float = BACKOFF_CAP, rand: Callable[[], float] = random.random) -> float:
    """Seconds before try `attempt + 1`: base * factor^(attempt-1), capped, "equal jitter".

    The jitter keeps half the delay and randomises the other half, so the delay for
    attempt n lies in [d/2, d]: below the cap, with factor >= 2, the ranges never
    overlap, so a later attempt always waits longer; at the cap waits stay in [cap/2, cap].
    """
    exponent = max(attempt, 1) - 1
    delay = cap if exponent > 64 else min(cap, base * factor ** exponent)
    return delay / 2 + delay / 2 * rand()


def standard_backoff(attempt: int) -> float:
    """The wait after try `attempt` of a call that failed for want of Xero (5xx, no answer)."""
    return backoff(attempt)


def concurrent_backoff(attempt: int) -> float:
    """The wait after a 429 "concurrent" with no Retry-After."""
    return backoff(attempt, base=CONCURRENT_BASE, cap=CONCURRENT_CAP)


def token_backoff(attempt: int) -> float:
    """After "token expired": at once for the first tries (after a refresh), then back off."""
    return 0.0 if attempt <= IMMEDIATE_TOKEN_RETRIES else backoff(attempt)


# --- the decision -------------------------------------------------------------------------

def classify(*, status: int | None, headers: Headers, body: Body,
             exception: BaseException | None = None, method: str = "GET", attempt: int = 1,
             rand: Callable[[], float] = random.random) -> XeroFailure:
    """What a failed Xero call means. Pure: no I/O; `rand` draws the backoff jitter.

    `status` is the HTTP status, or None if no response came back (then `exception` says
    why). `attempt` counts tries of this call so far, starting at 1.
    """
    method = method.upper()
    if status is None:
        if exception is None:
            raise ValueError("classify() needs a status or an exception")
        return _transport_failure(exception, method, attempt, rand)
    if status == 429:
        return _rate_limited(headers, attempt, rand)
    if status == 401:
        return _unauthorised(headers, body, attempt, rand)
    if status == 403:
        # Xero: "user doesn't have permission": tenant disconnected or a scope is missing.
        detail = _problem_detail(body) or "Xero refused access to this organisation"
        return ReconnectNeeded(f"{detail} (HTTP 403)", status=status)
    if status == 400:
        return _bad_request(body)
    if status == 404:
        return FixData(_messages(body) or [_NOT_FOUND], error_type="NotFound", status=status)
    if status == 408:
        # Request timeout: Xero gave up before reading our whole request, so nothing applied.
        return RetryLater(backoff(attempt, rand=rand), "Xero timed out the request",
                          status=status, wait_for_attempt=standard_backoff)
    if status == 501:
        # "The method you have called has not been implemented": retrying cannot help.
        return FixData(_messages(body) or ["Xero does not implement this call (HTTP 501)"],
                       error_type="NotImplemented", status=status)
    if status >= 500:
        return _server_error(status, headers, body, method=method, attempt=attempt, rand=rand)
    if status >= 400:
        return FixData(_messages(body) or [f"Xero refused the request (HTTP {status})"],
                       status=status)
    raise ValueError(f"HTTP {status} is not a failure")


def _rate_limited(headers: Headers, attempt: int, rand: Callable[[], float]) -> RetryLater:
    """429: X-Rate-Limit-Problem says which limit, Retry-After how long (platform-facts)."""
    problem, seconds = rate_limit_wait(headers)
    if problem == "day":
        return DailyLimitReached(seconds, "Xero's daily call limit for this organisation "
                                 "is reached", status=429)
    grows = None
    if problem == "concurrent" and header_number(headers, "Retry-After") is None:
        seconds = backoff(attempt, base=CONCURRENT_BASE, cap=CONCURRENT_CAP, rand=rand)
        grows = concurrent_backoff
    return RetryLater(seconds, f"Xero rate limit reached ({problem or 'unspecified'})",
                      status=429, wait_for_attempt=grows)


def _unauthorised(headers: Headers, body: Body, attempt: int,
                  rand: Callable[[], float]) -> XeroFailure:
    """401: an expired access token is ours to refresh; anything else needs a person."""
    detail = _problem_detail(body) or header(headers, "WWW-Authenticate") or ""
    # Xero's expiry body: {"Title":"Unauthorized","Detail":"TokenExpired: token expired at
    # 04/09/2023 05:16:59",...} (seen in freakboy3742/pyxero#337, waynerobinson/xeroizer#509).
    if "expired" in detail.lower():
        return _token_expired(f"Xero access token expired ({detail})", attempt, rand)
    return ReconnectNeeded(f"Xero refused our credentials ({detail or 'HTTP 401'})",
                           status=401)


def _token_expired(reason: str, attempt: int, rand: Callable[[], float]) -> TokenExpired:
    seconds = 0.0 if attempt <= IMMEDIATE_TOKEN_RETRIES else backoff(attempt, rand=rand)
    return TokenExpired(seconds, reason, status=401, wait_for_attempt=token_backoff)


def _bad_request(body: Body) -> XeroFailure:
    """400: a validation or query error from the API, or an OAuth error from identity."""
    data = _json(body)
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        # Token endpoint (RFC 6749 5.2): invalid_grant = refresh token dead or revoked.
        error = data["error"]
        description = data.get("error_description") or ""
        return ReconnectNeeded(f"Xero refused the grant: {error} {description}".strip(),
                               status=400)
    error_type = data.get("Type") if isinstance(data, dict) else None
    messages = _messages(body) or ["Xero refused the request (HTTP 400)"]
    return FixData(messages, error_type=error_type if isinstance(error_type, str) else None,
                   status=400)


def _server_error(status: int, headers: Headers, body: Body, *, method: str, attempt: int,
                  rand: Callable[[], float]) -> RetryLater:
    """5xx: Xero is down, or the organisation is offline (503). Writes may have applied."""
    seconds = header_number(headers, "Retry-After")
    grows = None
    if seconds is None:
        seconds, grows = backoff(attempt, rand=rand), standard_backoff
    text = (_messages(body) or [""])[0]
    reason = f"Xero failed with HTTP {status}" + (f": {text}" if text else "")
    if method in WRITE_METHODS:
        return Uncertain(seconds, reason, status=status, wait_for_attempt=grows)
    return RetryLater(seconds, reason, status=status, wait_for_attempt=grows)


# --- no response at all -------------------------------------------------------------------

# Failed before a byte of the request was sent: safe to repeat even a write.
_NOT_SENT: tuple[type[BaseException], ...] = (
    urllib3.exceptions.ConnectTimeoutError,  # includes NewConnectionError, NameResolutionError
    ConnectionRefusedError,
)
_TRANSPORT: tuple[type[BaseException], ...] = (
    urllib3.exceptions.HTTPError,  # ProtocolError, ReadTimeoutError, MaxRetryError, SSLError
    http.client.HTTPException,     # e.g. RemoteDisconnected, IncompleteRead
    OSError,                       # ConnectionResetError, TimeoutError, socket errors
    ApiSSLException,               # xero-python wraps urllib3's SSLError (rest.py)
)


def _transport_failure(exc: BaseException, method: str, attempt: int,
                       rand: Callable[[], float]) -> RetryLater:
    """No HTTP response: retry later; for a write, first find out whether it landed."""
    if not isinstance(exc, _TRANSPORT):
        raise TypeError(f"not a Xero transport failure: {exc!r}")
    seconds = backoff(attempt, rand=rand)
    reason = f"no answer from Xero ({exc.__class__.__name__})"
    # MaxRetryError hides earlier tries: urllib3 re-sends a PUT after a read error
    # (Retry.DEFAULT_ALLOWED_METHODS), so its last reason being a connect error proves nothing.
    if method in WRITE_METHODS and not isinstance(exc, _NOT_SENT):
        return Uncertain(seconds, reason, wait_for_attempt=standard_backoff)
    return RetryLater(seconds, reason, wait_for_attempt=standard_backoff)


# --- the SDK ------------------------------------------------------------------------------

# What to catch around an xero-python call and hand to from_sdk_exception().
SDK_ERRORS: tuple[type[BaseException], ...] = (ApiException, AccessTokenExpiredError,
                                               *_TRANSPORT)


def from_sdk_exception(exc: BaseException, *, method: str = "GET", attempt: int = 1,
                       rand: Callable[[], float] = random.random) -> XeroFailure:
    """Translate an exception from an xero-python call (one of SDK_ERRORS) via classify().

    The SDK's exceptions do not record the HTTP method, so pass it. Raises TypeError for
    anything else (a bug should surface, not be retried).
    Usage: `except SDK_ERRORS as exc: raise from_sdk_exception(exc, method="PUT") from exc`
    """
    if isinstance(exc, AccessTokenExpiredError):
        # The SDK found its token expired and could not refresh it itself (we refresh
        # tokens in app.tokens, not the SDK): refresh, then retry.
        return _token_expired("Xero access token expired (found by xero-python)", attempt,
                              rand)
    if isinstance(exc, ApiException) and not isinstance(exc, ApiSSLException):
        return _from_api_exception(exc, method, attempt, rand)
    return classify(status=None, headers=None, body=None, exception=exc, method=method,
                    attempt=attempt, rand=rand)


def _from_api_exception(exc: ApiException, method: str, attempt: int,
                        rand: Callable[[], float]) -> XeroFailure:
    """Read status, headers and body off the response the SDK kept (`http_resp`).

    `http_resp` is a RESTResponse (xero_python/rest.py) wrapping urllib3's response. Read it
    directly: AccountingBadRequestException.status/.reason parse the body as JSON and raise
    on a non-JSON body.
    """
    response = exc.http_resp
    status = getattr(response, "status", None) or getattr(exc, "_status", None)
    if not status:
        # ApiException(status=0): the SDK could not even build the request - our bug.
        raise TypeError(f"xero-python refused to send the request: {exc}")
    headers = response.getheaders() if response is not None else None
    body = getattr(response, "data", None)
    return classify(status=int(status), headers=headers, body=body, method=method,
                    attempt=attempt, rand=rand)


# --- bodies -------------------------------------------------------------------------------

def _json(body: Body) -> Any:
    """The body as JSON, or None if it is not JSON (Xero answers plain text when offline)."""
    if body is None or isinstance(body, (dict, list)):
        return body
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        return json.loads(text)
    except ValueError:
        return None


def _text(body: Body) -> str:
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace").strip()
    return body.strip() if isinstance(body, str) else ""


def _messages(body: Body) -> list[str]:
    """Xero's messages for a person: validation errors first, else the overall message.

    400 body (platform-facts "Batches"): {ErrorNumber, Type, Message,
    Elements: [{..., ValidationErrors: [{Message}]}]}; nested records (an invoice's
    Contact, its LineItems) may carry their own ValidationErrors, so walk the elements.
    """
    data = _json(body)
    if isinstance(data, dict):
        found = list(dict.fromkeys(_validation_messages(data.get("Elements"))))
        if found:
            return found
        for key in ("Message", "Detail", "Title", "message"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return [value.strip()]
        return []
    text = _text(body) if data is None else ""
    return [text[:500]] if text else []


def _validation_messages(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _validation_messages(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "ValidationErrors" and isinstance(value, list):
                yield from (str(e["Message"]) for e in value
                            if isinstance(e, dict) and e.get("Message"))
            elif isinstance(value, (list, dict)):
                yield from _validation_messages(value)


def _problem_detail(body: Body) -> str:
    """The Detail of Xero's RFC 7807-style auth errors ({"Title","Status","Detail",...})."""
    data = _json(body)
    if isinstance(data, dict):
        detail = data.get("Detail") or data.get("Title")
        return detail if isinstance(detail, str) else ""
    return _text(body)[:200]
