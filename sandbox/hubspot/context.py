"""What a CRM handler sees of its call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.hubspot.errors import missing_scopes
from sandbox.hubspot.schema import JsonObject, ObjectType, object_type
from sandbox.hubspot.state import ChangeSource, PortalCrm
from sandbox.kit.clock import Clock
from sandbox.kit.errors import VendorError
from sandbox.kit.service import ApiRoute, Exchange


@dataclass
class Ctx:
    """One authenticated CRM call: its portal and the calling app."""

    exchange: Exchange[Any]
    portal: PortalCrm
    app_id: int
    scopes: frozenset[str]
    clock: Clock
    association_page: Callable[[str, list[JsonObject], JsonObject], JsonObject]
    """`HubSpotCrmApi._association_page`: one input's page of a v4 batch read."""

    @property
    def request(self) -> Request:
        return self.exchange.request

    @property
    def source(self) -> ChangeSource:
        return ChangeSource.integration(self.app_id)

    def require(self, any_of: Sequence[str]) -> None:
        """403 MISSING_SCOPES unless the token has one of `any_of` (empty: no check)."""
        if any_of and not self.scopes & set(any_of):
            raise VendorError(missing_scopes(any_of))

    def object_type(self, name: str, access: str) -> ObjectType:
        """The type named in the path, once the token may `access` ("read", "write",
        "schema_read", "schema_write") it."""
        otype = object_type(name)
        self.require(getattr(otype, f"{access}_scopes"))
        return otype

    def now_ms(self) -> int:
        return int(self.clock.now() * 1000)


def routes(rule: str, policy: str = "ten_secondly",
           **handlers: Callable[..., Response]) -> list[ApiRoute]:
    """One rule's endpoints: a handler per HTTP method (``GET=...``), `policy` its limit."""
    return [ApiRoute(rule, (method,), handler, policy) for method, handler in handlers.items()]
