"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy import text

from groupcloud import __version__
from groupcloud.api import openapi, problems
from groupcloud.api.middleware import BodyLimit, NoNul, Unhandled
from groupcloud.api.routes import (
    allocations,
    analytics,
    broker,
    catalog,
    isolation,
    networks,
    planning,
    pool,
    providers,
    tenancy,
)
from groupcloud.errors import GroupcloudError
from groupcloud.services.common.database import schema_revisions
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute.worker import Worker

__all__ = ["create_app"]

DESCRIPTION = """
The control plane of the group common cloud: companies of a financial group pool their
hosts into one cloud; each company is guaranteed its nominal quota, borrows what others
leave idle (and gives it back, with notice, when they need it), and whatever it
releases, lets expire or leaves idle is reused by the others. Requests that cannot be
admitted now wait in a fair-share queue instead of failing.

Authenticate with `Authorization: Bearer <token>`. Errors are RFC 9457
`application/problem+json` documents with a stable `code`.
"""


def create_app(runtime: Runtime, *, background: bool = False, worker: bool = False) -> FastAPI:
    """An application bound to ``runtime`` (the caller owns and closes it).

    With ``background``, the server's background work (SQLite checkpoints) starts with it;
    with ``worker``, also a worker thread (scheduler, reclaims, leases, idle reclaim) that
    acts whenever it holds leadership.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if background:
            runtime.start_background()
        runner = Worker(runtime) if worker else None
        if runner is not None:
            runner.start()
        try:
            yield
        finally:
            if runner is not None:
                runner.stop()

    app = FastAPIOffline(
        title="groupcloud",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "allocations", "description": "Claims of capacity by a company's project."},
            {"name": "hosts", "description": "The pool's hosts and their inventories."},
            {"name": "quotas", "description": "What each company may use."},
            {"name": "usage", "description": "Capacity and use by pool, zone, host, company."},
            {"name": "companies", "description": "Companies of the group and their projects."},
            {"name": "zones", "description": "Placement domains."},
            {"name": "catalog", "description": "PaaS and SaaS templates and their plans."},
            {
                "name": "service broker",
                "description": "The catalog as an Open Service Broker (API v2.13-2.17) for "
                "platforms: errors in its own form; the token as basic-auth password.",
            },
            {
                "name": "providers",
                "description": "Public clouds that external zones reach, and their offers.",
            },
            {"name": "tokens", "description": "API tokens and roles."},
            {"name": "events", "description": "The audit trail: every state change."},
            {"name": "networks", "description": "Supernets, VPCs, subnets and IP addresses."},
            {
                "name": "network isolation",
                "description": "Security rules of VPCs, peerings between VPCs (request, "
                "accept), the operator's peering bans, and reachability checks.",
            },
            {
                "name": "analytics",
                "description": "App activity events and the group's integrated monthly active "
                "users (each person once across the apps), per Asia/Seoul month.",
            },
        ],
    )
    app.state.runtime = runtime
    problems.install(app)
    app.add_middleware(Unhandled)  # inner: an unexpected error is a 500 problem document
    app.add_middleware(NoNul)
    app.add_middleware(BodyLimit, max_bytes=runtime.settings.max_body_bytes)
    app.include_router(allocations.router)
    app.include_router(pool.router)
    app.include_router(tenancy.router)
    app.include_router(networks.router)
    app.include_router(isolation.router)
    app.include_router(analytics.router)
    app.include_router(planning.router)
    app.include_router(providers.router)
    app.include_router(catalog.router)
    broker.install(app)

    openapi.install(app)

    @app.get("/healthz", tags=["health"], summary="The process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["health"], summary="The database is reachable and migrated")
    def readyz() -> dict[str, str]:
        with runtime.db.read() as s:
            s.execute(text("SELECT 1"))
        current, head = schema_revisions(runtime)
        if current != head:
            raise GroupcloudError(f"database schema is at {current}, expected {head}")
        return {"status": "ready", "schema": head}

    return app
