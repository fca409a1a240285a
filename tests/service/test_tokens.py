"""API tokens: the secret is shown once and only its hash is stored; revoked tokens stop
working at once; company admins issue tokens of their own company only."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from groupcloud.db.models import ApiTokenRow
from groupcloud.domain.tenancy import Role
from groupcloud.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from groupcloud.schemas.tenancy import TokenCreate
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.tenancy import tokens
from groupcloud.services.tenancy.tokens import SYSTEM, authenticate, issue_token, revoke_token
from tests.service.helpers import all_pages, who
from tests.support import World


def test_issued_secret_is_shown_once_and_only_its_hash_is_stored(rt: Runtime, world: World) -> None:
    issued = issue_token(rt, SYSTEM, TokenCreate(name="robot", role=Role.MEMBER, company="card"))

    assert issued.secret.startswith("gc_")
    assert len(issued.secret) >= 40
    assert issued.prefix == issued.secret[:10]
    assert (issued.role, issued.company, issued.created_by) == (Role.MEMBER, "card", "local")
    with rt.db.read() as s:
        row = s.scalars(select(ApiTokenRow).where(ApiTokenRow.id == issued.id)).one()
        stored = [
            str(v)
            for t in s.scalars(select(ApiTokenRow))
            for v in (t.name, t.token_hash, t.prefix, t.role, t.created_by)
        ]
    assert row.token_hash == hashlib.sha256(issued.secret.encode()).hexdigest()
    assert not any(issued.secret in v for v in stored)
    for secret in (world.admin, world.bank_admin, world.bank_member, world.card_member):
        assert not any(secret in v for v in stored)
    listed = tokens.list_tokens(rt, SYSTEM).items
    assert "secret" not in listed[0].model_dump()


def test_authenticate_returns_the_principal_of_the_token(rt: Runtime, world: World) -> None:
    admin = authenticate(rt, world.admin)
    lead = authenticate(rt, world.bank_admin)
    dev = authenticate(rt, world.card_member)

    assert (admin.role, admin.company, admin.name) == (Role.GROUP_ADMIN, None, "ops")
    assert (lead.role, lead.company) == (Role.COMPANY_ADMIN, "bank")
    assert (dev.role, dev.company, dev.actor) == (Role.MEMBER, "card", "token:card-dev@card")
    for bad in (None, "", "gc_nope", world.admin + "x"):
        with pytest.raises(Unauthenticated) as err:
            authenticate(rt, bad)
        assert err.value.status == 401


def test_revoked_token_stops_working_and_revoking_again_changes_nothing(
    rt: Runtime, world: World
) -> None:
    dev = who(rt, world.bank_member)
    revoked = revoke_token(rt, SYSTEM, dev.token_id)
    assert revoked.revoked_at is not None

    with pytest.raises(Unauthenticated):
        authenticate(rt, world.bank_member)
    again = revoke_token(rt, SYSTEM, dev.token_id)
    assert again.revoked_at == revoked.revoked_at
    assert authenticate(rt, world.bank_admin).company == "bank"  # others keep working
    with pytest.raises(NotFound):
        revoke_token(rt, SYSTEM, 99999)


def test_company_admin_issues_and_revokes_tokens_of_its_own_company_only(
    rt: Runtime, world: World
) -> None:
    lead = who(rt, world.bank_admin)

    member = issue_token(rt, lead, TokenCreate(name="ci", role=Role.MEMBER, company="bank"))
    deputy = issue_token(rt, lead, TokenCreate(name="dep", role=Role.COMPANY_ADMIN, company="bank"))
    assert authenticate(rt, member.secret).company == "bank"
    assert authenticate(rt, deputy.secret).role is Role.COMPANY_ADMIN
    with pytest.raises(NotFound):  # another company does not even exist for bank
        issue_token(rt, lead, TokenCreate(name="x", role=Role.MEMBER, company="card"))
    with pytest.raises(Forbidden):
        issue_token(rt, lead, TokenCreate(name="x", role=Role.GROUP_ADMIN))
    card_token = who(rt, world.card_member).token_id
    with pytest.raises(NotFound):
        revoke_token(rt, lead, card_token)
    assert authenticate(rt, world.card_member).company == "card"
    revoke_token(rt, lead, member.id)
    with pytest.raises(Unauthenticated):
        authenticate(rt, member.secret)


def test_members_cannot_issue_list_or_revoke_tokens_and_roles_must_match_companies(
    rt: Runtime, world: World
) -> None:
    dev = who(rt, world.bank_member)
    lead_id = who(rt, world.bank_admin).token_id
    with pytest.raises(Forbidden):
        issue_token(rt, dev, TokenCreate(name="x", role=Role.MEMBER, company="bank"))
    with pytest.raises(Forbidden):
        tokens.list_tokens(rt, dev)
    with pytest.raises(Forbidden):
        revoke_token(rt, dev, lead_id)
    assert authenticate(rt, world.bank_admin).role is Role.COMPANY_ADMIN
    with pytest.raises(InvalidInput):  # role and company must agree
        issue_token(rt, SYSTEM, TokenCreate(name="x", role=Role.GROUP_ADMIN, company="bank"))
    with pytest.raises(InvalidInput):
        issue_token(rt, SYSTEM, TokenCreate(name="x", role=Role.MEMBER))
    with pytest.raises(NotFound):
        issue_token(rt, SYSTEM, TokenCreate(name="x", role=Role.MEMBER, company="nobank"))


def test_list_tokens_shows_what_the_caller_administers_and_pages(rt: Runtime, world: World) -> None:
    lead = who(rt, world.bank_admin)
    for i in range(3):
        issue_token(rt, lead, TokenCreate(name=f"bot{i}", role=Role.MEMBER, company="bank"))

    everything = tokens.list_tokens(rt, SYSTEM).items
    mine = tokens.list_tokens(rt, lead).items
    paged, pages = all_pages(lambda c: tokens.list_tokens(rt, SYSTEM, cursor=c, limit=2))

    assert [t.name for t in everything] == [
        "ops", "bank-lead", "bank-dev", "card-dev", "bot0", "bot1", "bot2"
    ]  # fmt: skip
    assert [t.name for t in mine] == ["bank-lead", "bank-dev", "bot0", "bot1", "bot2"]
    assert tokens.list_tokens(rt, lead, company="bank").items == mine
    assert [t.name for t in tokens.list_tokens(rt, SYSTEM, company="card").items] == ["card-dev"]
    with pytest.raises(NotFound):
        tokens.list_tokens(rt, lead, company="card")
    assert paged == everything
    assert pages == 4


def test_a_token_stops_working_when_it_expires_on_the_runtime_clock(
    rt: Runtime, world: World
) -> None:
    start = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)
    rt.clock = lambda: start
    expiring = issue_token(
        rt,
        SYSTEM,
        TokenCreate(
            name="contractor",
            role=Role.COMPANY_VIEWER,
            company="bank",
            expires_at=start + timedelta(hours=8),
        ),
    )
    assert expiring.expires_at == start + timedelta(hours=8)
    assert authenticate(rt, expiring.secret).role is Role.COMPANY_VIEWER
    rt.clock = lambda: start + timedelta(hours=8)
    with pytest.raises(Unauthenticated, match="expired"):
        authenticate(rt, expiring.secret)
    assert authenticate(rt, world.bank_member).company == "bank"  # others go on working
    with pytest.raises(InvalidInput, match="past"):
        issue_token(
            rt,
            SYSTEM,
            TokenCreate(name="late", role=Role.MEMBER, company="bank", expires_at=start),
        )


def test_group_roles_have_no_company_and_company_roles_need_one(rt: Runtime, world: World) -> None:
    auditor = issue_token(rt, SYSTEM, TokenCreate(name="audit", role=Role.GROUP_AUDITOR))
    viewer = issue_token(
        rt, SYSTEM, TokenCreate(name="look", role=Role.COMPANY_VIEWER, company="card")
    )
    assert (auditor.company, viewer.company) == (None, "card")
    for role, company in ((Role.GROUP_AUDITOR, "bank"), (Role.COMPANY_VIEWER, None)):
        with pytest.raises(InvalidInput, match="company"):
            issue_token(rt, SYSTEM, TokenCreate(name="x", role=role, company=company))
    lead = who(rt, world.bank_admin)
    with pytest.raises(Forbidden, match="group-admin"):  # a company admin issues no group role
        issue_token(rt, lead, TokenCreate(name="x", role=Role.GROUP_AUDITOR))
    made = issue_token(rt, lead, TokenCreate(name="y", role=Role.COMPANY_VIEWER, company="bank"))
    assert made.company == "bank"
    # the auditor reviews every token and revokes none
    audit = authenticate(rt, auditor.secret)
    listed, _ = all_pages(lambda c: tokens.list_tokens(rt, audit, cursor=c))
    assert {t.company for t in listed} >= {
        None,
        "bank",
        "card",
    }
    with pytest.raises(Forbidden):
        revoke_token(rt, audit, made.id)
