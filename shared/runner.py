"""Run one service as its own process: ``python -m services.<name>`` (port from ``LEMMA_PORT``)."""

from __future__ import annotations

import os
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from shared.gc_tuning import tune_for_folding
from shared.log_format import configure_logging
from shared.settings import get_settings

#: Idle keep-alive connections stay open longer than a proxy keeps them (Caddy: 2 min, most load
#: balancers 60 s): a service that closes first races the proxy's next request on that connection,
#: and a POST lost that way is a 502 the proxy may not retry.
KEEP_ALIVE_S = 150


def serve(name: str, create_app: Callable[[], FastAPI], *, default_port: int) -> None:
    # JSON lines unless told otherwise (LEMMA_LOG_FORMAT=text reads better in a terminal)
    configure_logging(
        name,
        os.environ.get("LEMMA_INSTANCE", "1"),
        fmt=os.environ.get("LEMMA_LOG_FORMAT", "json"),
        level=os.environ.get("LEMMA_LOG_LEVEL", "INFO"),
        levels=os.environ.get("LEMMA_LOG_LEVELS", ""),
    )
    port = int(os.environ.get("LEMMA_PORT", default_port))
    host = os.environ.get("LEMMA_HOST", "127.0.0.1")
    app = create_app()
    tune_for_folding()  # after start-up: what the app built stays out of the collector's way
    # the client's address (what the per-address limit counts) is the X-Forwarded-For of a
    # trusted proxy, the gateway, and the connection's own address otherwise
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,  # uvicorn's lines go through ours (configure_logging)
        access_log=False,  # each request is one line of ours (shared.request_log)
        timeout_keep_alive=KEEP_ALIVE_S,
        proxy_headers=True,
        forwarded_allow_ips=get_settings().trusted_proxies,
    )
