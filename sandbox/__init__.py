"""Loopback fakes of the vendors Paydeck talks to (Xero, HubSpot, Pipedrive).

Each fake is a thread-safe WSGI app serving the vendor's real paths on one root;
run it with `LoopbackServer(fake)` (or `fake.serve()`) and point the client's base
URLs at `server.url`. What the fakes share lives in `sandbox.kit`.
"""

from sandbox.hubspot import FakeHubSpot
from sandbox.kit.clock import Clock
from sandbox.kit.oauth import OAuthFake
from sandbox.kit.server import LoopbackServer
from sandbox.pipedrive import FakePipedrive
from sandbox.xero import FakeXero

__all__ = ["Clock", "FakeHubSpot", "FakePipedrive", "FakeXero", "LoopbackServer", "OAuthFake"]
