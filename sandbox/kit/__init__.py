"""The fake-vendor kit: what every fake shares (standard library and werkzeug only).

clock (Clock), server (LoopbackServer), routing (FakeService), service (VendorApi:
the request pipeline), faults (Fault, FaultInjector), calls (Call, CallLog), windows
(RollingWindows, FixedWindow, Admission), webhooks (DeliveryLoop, post, Ban), jsonio (JSON
and query readers), errors (ErrorShape, VendorError), state (ScopedState), and the OAuth 2
server the fakes build on (oauth, grants). See docs/architecture.md.
"""
