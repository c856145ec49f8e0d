"""Loopback fakes of the vendors Paydeck talks to (Xero, HubSpot, Pipedrive).

Each fake is a thread-safe WSGI app serving the vendor's real paths on one root;
run it with `LoopbackServer(fake)` (or `fake.serve()`) and point the client's base
URLs at `server.url`.
"""

from sandbox.clock import Clock
from sandbox.hubspot import FakeHubSpot
from sandbox.oauth import OAuthFake
from sandbox.pipedrive import FakePipedrive
from sandbox.server import LoopbackServer
from sandbox.xero import FakeXero

__all__ = ["Clock", "FakeHubSpot", "FakePipedrive", "FakeXero", "LoopbackServer", "OAuthFake"]
