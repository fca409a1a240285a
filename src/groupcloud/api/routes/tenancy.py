"""Companies, projects, zones, tokens and whoami."""

from __future__ import annotations

from fastapi import APIRouter, status

from groupcloud.api.deps import Caller, Cursor, IdPath, Limit, Rt
from groupcloud.schemas.base import Page
from groupcloud.schemas.tenancy import (
    Company,
    CompanyCreate,
    CompanyUpdate,
    Project,
    ProjectCreate,
    ProjectUpdate,
    Token,
    TokenCreate,
    TokenCreated,
    Whoami,
)
from groupcloud.schemas.zones import Zone, ZoneCreate, ZoneUpdate
from groupcloud.services.tenancy import companies, tokens
from groupcloud.services.zones import zones

router = APIRouter(prefix="/v1")


@router.get("/whoami", tags=["tokens"], summary="Who the token belongs to")
def whoami(caller: Caller) -> Whoami:
    return Whoami(name=caller.name, role=caller.role, company=caller.company)


@router.get("/companies", tags=["companies"], summary="List companies")
def list_companies(
    rt: Rt, caller: Caller, cursor: Cursor = None, limit: Limit = None
) -> Page[Company]:
    return companies.list_companies(rt, caller, cursor=cursor, limit=limit)


@router.post(
    "/companies", tags=["companies"], status_code=status.HTTP_201_CREATED, summary="Add a company"
)
def create_company(rt: Rt, caller: Caller, body: CompanyCreate) -> Company:
    return companies.create_company(rt, caller, body)


@router.get("/companies/{company}", tags=["companies"], summary="Show a company")
def get_company(rt: Rt, caller: Caller, company: str) -> Company:
    return companies.get_company(rt, caller, company)


@router.patch(
    "/companies/{company}", tags=["companies"], summary="Change a company's fair-share weight"
)
def update_company(rt: Rt, caller: Caller, company: str, body: CompanyUpdate) -> Company:
    return companies.update_company(rt, caller, company, body)


@router.patch(
    "/companies/{company}/projects/{project}",
    tags=["companies"],
    summary="Change a project's default queue priority",
)
def update_project(
    rt: Rt, caller: Caller, company: str, project: str, body: ProjectUpdate
) -> Project:
    return companies.update_project(rt, caller, company, project, body)


@router.get(
    "/companies/{company}/projects", tags=["companies"], summary="List a company's projects"
)
def list_projects(
    rt: Rt, caller: Caller, company: str, cursor: Cursor = None, limit: Limit = None
) -> Page[Project]:
    return companies.list_projects(rt, caller, company, cursor=cursor, limit=limit)


@router.post(
    "/companies/{company}/projects",
    tags=["companies"],
    status_code=status.HTTP_201_CREATED,
    summary="Add a project to a company",
)
def create_project(rt: Rt, caller: Caller, company: str, body: ProjectCreate) -> Project:
    return companies.create_project(rt, caller, company, body)


@router.get("/zones", tags=["zones"], summary="List zones")
def list_zones(rt: Rt, caller: Caller) -> list[Zone]:
    return zones.list_zones(rt, caller)


@router.post("/zones", tags=["zones"], status_code=status.HTTP_201_CREATED, summary="Add a zone")
def create_zone(rt: Rt, caller: Caller, body: ZoneCreate) -> Zone:
    return zones.create_zone(rt, caller, body)


@router.get("/zones/{name}", tags=["zones"], summary="Show a zone and its attributes")
def get_zone(rt: Rt, caller: Caller, name: str) -> Zone:
    return zones.get_zone(rt, caller, name)


@router.patch(
    "/zones/{name}",
    tags=["zones"],
    summary="Change a zone's attributes (country, separation, certifications, data classes, "
    "approvals; group admins)",
)
def update_zone(rt: Rt, caller: Caller, name: str, body: ZoneUpdate) -> Zone:
    return zones.update_zone(rt, caller, name, body)


@router.get("/tokens", tags=["tokens"], summary="List API tokens (never their secrets)")
def list_tokens(
    rt: Rt,
    caller: Caller,
    company: str | None = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> Page[Token]:
    return tokens.list_tokens(rt, caller, company=company, cursor=cursor, limit=limit)


@router.post(
    "/tokens",
    tags=["tokens"],
    status_code=status.HTTP_201_CREATED,
    summary="Issue an API token (the secret is returned once)",
)
def issue_token(rt: Rt, caller: Caller, body: TokenCreate) -> TokenCreated:
    return tokens.issue_token(rt, caller, body)


@router.delete("/tokens/{token_id}", tags=["tokens"], summary="Revoke an API token")
def revoke_token(rt: Rt, caller: Caller, token_id: IdPath) -> Token:
    return tokens.revoke_token(rt, caller, token_id)
