"""A server process's heap, settled once its app is built (gunicorn worker, rq worker).

Without this, a worker serves its first requests with its whole start-up heap (about 150,000
objects: the ~1,450 modules, SQLAlchemy's mappers, the app) promoted to the oldest garbage
collector generation but never yet examined by a full collection. CPython runs a full
(generation 2) collection once the objects promoted since the last one exceed a quarter of
those that survived it, so each worker's first full collection came after about 60 requests
(77 before issue #15's modules) and walked the whole heap: 140-190 ms of CPU here, one
request per worker. bench/webhook_ingest's 4 workers serve ~70 requests each, so all four
paused inside the measured window and its p99 (the 3rd-slowest of 200) carried the pause.

So, before the first request:
- `configure_mappers()`: SQLAlchemy's mapper configuration, otherwise done by the first ORM
  query of the first request, happens now and its objects are part of the start-up heap;
- `gc.collect()`: start-up garbage goes, and the count of promoted objects restarts at 0;
- `gc.freeze()`: the start-up objects, alive for the life of the process anyway, move to the
  permanent generation that no later collection walks, so a full collection costs the
  objects made since (thousands), not the modules (docs.python.org/3/library/gc.html#gc.freeze;
  freezing before rq forks its work horses also keeps their pages shared, as the docs say).
Frozen objects are still freed by reference counting; only a reference cycle among them
would stay, and start-up objects are not garbage. Apps built for tests and benchmarks (given
a Settings object) are not frozen: a test process builds hundreds of apps and must free them.
"""

from __future__ import annotations

import gc

from sqlalchemy.orm import configure_mappers


def settle_for_serving() -> None:
    """Configure the ORM, collect start-up garbage, freeze what is left (see above)."""
    configure_mappers()
    gc.collect()
    gc.freeze()
