"""What a CRM handler sees of its call, and of the API serving it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from werkzeug.wrappers import Request, Response

from sandbox.hubspot.errors import missing_scopes
from sandbox.hubspot.schema import JsonObject, ObjectType, object_type
from sandbox.hubspot.state import ChangeSource, PortalCrm
from sandbox.hubspot.webhooks import WebhookHub
from sandbox.kit.clock import Clock
from sandbox.kit.errors import VendorError
from sandbox.kit.service import ApiRoute, Exchange


class CrmHost(Protocol):
    """The parts of `HubSpotCrmApi` its handlers use."""

    clock: Clock
    webhooks: WebhookHub
    association_page_size: int

    def secret_for(self, app_id: int) -> str: ...

    def _association_page(self, from_id: str, targets: list[JsonObject],
                          item: JsonObject) -> JsonObject: ...


@dataclass
class Ctx:
    """One authenticated CRM call: its portal and the calling app."""

    exchange: Exchange[Any]
    api: CrmHost
    portal: PortalCrm
    app_id: int
    scopes: frozenset[str]

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
        return int(self.api.clock.now() * 1000)


def routes(rule: str, policy: str = "ten_secondly",
           **handlers: Callable[..., Response]) -> list[ApiRoute]:
    """One rule's endpoints: a handler per HTTP method (``GET=...``), `policy` its limit."""
    return [ApiRoute(rule, (method,), handler, policy) for method, handler in handlers.items()]
