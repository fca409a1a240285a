"""The sharing engine under real concurrency: two API processes and two worker processes
on one database, and 32 clients queueing requests that borrow, guaranteed requests that
make the scheduler reclaim lent nominal, cancels and releases, keep marks, lease changes
and utilisation reports, all at once.

While it runs the counters are recomputed from the rows several times (one snapshot
each); afterwards every allocation's event history is replayed against its row (see
``sharing_load.audit``), and releasing everything must bring every counter back to 0.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select, text

from groupcloud.db import claims
from groupcloud.db.models import AllocationRow
from groupcloud.db.prepared import Cursor, Prepared
from groupcloud.domain.allocation import AllocationState, EndReason
from groupcloud.domain.clock import utcnow
from groupcloud.errors import AllocationReleased
from groupcloud.schemas.compute import AllocationCreate, AllocationUpdate, UtilisationReport
from groupcloud.services.audit import events
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, idle, reclaims, scheduler
from groupcloud.services.tenancy.tokens import SYSTEM
from tests.conftest import open_runtime
from tests.integration.sharing_load import (
    LOST,
    TOOK,
    Sampler,
    audit,
    counters,
    database_for,
    log_text,
    release_everything,
    run_mix,
    sharing_world,
    snapshot_reads,
    start_api,
    start_worker,
    unfinished,
    wait_apis_ready,
    wait_for,
)
from tests.support import check_consistency, stop_processes


@pytest.fixture
def runtimes(tmp_path: Path) -> Iterator[Callable[[str], Runtime]]:
    """Opens runtimes on a database URL and closes them after the test, pass or fail."""
    opened: list[Runtime] = []

    def open_on(url: str) -> Runtime:
        opened.append(open_runtime(url, tmp_path))
        return opened[-1]

    yield open_on
    for rt in opened:
        rt.close()


@pytest.fixture
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    """An SQLite file, or a PostgreSQL database of its own: the workers' leadership is an
    advisory lock per database, which a worker of another test session on the shared test
    database would otherwise hold (see test_worker_leadership)."""
    yield from database_for(request)


def _probe(rt: Runtime) -> Callable[[], str | None]:
    def probe() -> str | None:
        consistency = check_consistency(rt)
        if not consistency.ok:
            return f"check_consistency: {consistency}"
        found = audit(rt)
        return f"audit: {found.problems[:10]}" if found.problems else None

    return probe


@pytest.mark.race
@pytest.mark.slow
@pytest.mark.parametrize(
    ("database", "clients", "seconds"),
    [("postgresql", 32, 6.0), ("sqlite", 16, 4.0)],
    ids=["postgresql-32-clients", "sqlite-16-clients"],
    indirect=["database"],
)
def test_sharing_with_two_apis_and_two_workers_keeps_every_invariant(
    database: str,
    clients: int,
    seconds: float,
    tmp_path: Path,
    runtimes: Callable[[str], Runtime],
) -> None:
    """2 ``serve --no-worker`` + 2 ``worker`` processes on one database, ``clients``
    threads of queued and direct requests, releases, cancels, keep marks, lease changes
    and utilisation reports (``sharing_load.run_mix``), with the invariants sampled while
    it runs; then the rows, the event history and the counters are checked."""
    rt = runtimes(database)
    company_tokens = sharing_world(rt)
    sampler_rt = snapshot_reads(runtimes(database))
    worker_logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    # Everything starts (and imports) at once; the APIs are waited for, the workers not.
    workers = [start_worker(database, tmp_path / f"w{i}", log) for i, log in enumerate(worker_logs)]
    apis = [start_api(database, tmp_path / f"a{i}", tmp_path / f"api{i}.log") for i in range(2)]
    api_processes: list[subprocess.Popen[bytes]] = [p for p, _ in apis]
    try:
        wait_apis_ready(apis)
        wait_for("a worker leads", lambda: any(TOOK in log_text(g) for g in worker_logs), 60)
        with Sampler(_probe(sampler_rt), interval=max(seconds / 8, 0.3)) as sampler:
            result = run_mix(
                [url for _, url in apis],
                company_tokens,
                clients=clients,
                seconds=seconds,
                max_ops=400,
                phases=4,
            )
        stop_processes(api_processes)
        # Let the workers finish what is due: no reclaim may stay half done.
        wait_for("reclaims finished", lambda: not unfinished(rt)["reclaiming"], 30, step=0.1)
        worker_codes = stop_processes(workers)
    finally:
        stop_processes(api_processes + workers)

    print(
        f"\n{database.split(':')[0]}: {result.operations} operations by {clients} clients, "
        f"{sampler.samples} consistency samples; outcomes {dict(sorted(result.outcomes.items()))}"
    )
    assert not result.known_bugs, dict(result.known_bugs)  # the bugs this test found, fixed
    assert not result.unexpected, result.unexpected[:10]
    assert len(result.servers_used) == 2, "both API processes must have served requests"
    assert sampler.samples >= 3, "the invariants were not sampled while the load ran"
    assert not sampler.failures, sampler.failures[:3]
    assert worker_codes == [0, 0], [log_text(g) for g in worker_logs]
    took = [log_text(g).count(TOOK) for g in worker_logs]
    assert sorted(took) == [0, 1], f"leadership must not flap under load: {took}"
    assert not any(LOST in log_text(g) for g in worker_logs)

    # Everything the clients were told is what the database says.
    consistency = check_consistency(rt)
    assert consistency.ok, consistency
    found = audit(rt)
    print(f"states {dict(found.states)}, end reasons {dict(found.end_reasons)}")
    print(f"events {dict(sorted(found.events.items()))}")
    assert not found.known_bugs, found.known_bugs[:5]
    assert not found.problems, found.problems[:20]
    with rt.db.read() as s:
        stored = {
            a.id: (a.state, a.keep, a.end_reason) for a in s.scalars(select(AllocationRow)).all()
        }
    assert result.created.keys() <= stored.keys(), "a 201/202 was answered for nothing stored"
    assert all(stored[i][0] == "released" for i in result.released)
    assert all(stored[i][1] == keep for i, keep in result.kept.items()), "a keep mark was lost"
    kept_but_idle = [i for i, keep in result.kept.items() if keep and stored[i][2] == "idle"]
    assert not kept_but_idle, f"released as idle although marked keep: {kept_but_idle}"

    # The run exercised the sharing engine, not only direct claims.
    assert result.outcomes["director cycle"] >= 1, "no scripted borrow-and-reclaim cycle ended"
    events = found.events
    # (a count of work done in fixed seconds: with make test's two processes a loaded run
    # does less, the invariants above are what must hold whatever the pace)
    assert events["allocation.requested"] >= 10, events
    assert events["allocation.admitted"] >= 5, events
    assert events["allocation.borrowed"] >= 2, events
    assert events["allocation.reclaim_notice"] >= 1, events
    assert events["allocation.reclaimed"] >= 1, events
    assert found.end_reasons["cancelled"] >= 1, found.end_reasons

    # Releasing everything returns every counter to exactly 0.
    release_everything(rt)
    assert counters(rt) == {"inventory used": 0, "quota used": 0, "borrowed": 0, "lent": 0}
    assert check_consistency(rt).ok
    after = audit(rt)
    assert not after.problems, after.problems[:20]
    assert set(after.states) == {"released"}


# --- deterministic reproductions of races found by the test above -----------------------


def _concurrently(action: Callable[[], object], wait_s: float = 2.0) -> threading.Thread:
    """Run ``action`` in another thread (another transaction) and wait for it up to
    ``wait_s``: long enough to commit when nothing blocks it, bounded when a row lock of
    the interrupted transaction does (then it finishes after that one commits)."""
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    thread.join(timeout=wait_s)
    return thread


@pytest.fixture
def pg_pair(postgres_url: str, runtimes: Callable[[str], Runtime]) -> tuple[Runtime, Runtime]:
    """Two runtimes (two processes' worth of connections) on the emptied PostgreSQL schema,
    with the group of ``sharing_world``, immediate reclaims and idle reclaim."""
    settings = {
        "reclaim_notice_s": 0,
        "reclaim_backoff_s": 0,
        "idle_window_s": 0,
        "idle_grace_s": 0,
    }
    first = runtimes(postgres_url)
    first.settings = first.settings.model_copy(update=settings)
    second = runtimes(postgres_url)
    second.settings = second.settings.model_copy(update=settings)
    sharing_world(first)
    return first, second


def _borrowing(rt: Runtime, company: str = "bank") -> str:
    """A queued request that borrows (32 VCPU, beyond bank's nominal of 24)."""
    made = allocations.allocate(
        rt,
        SYSTEM,
        AllocationCreate(company=company, project="app", resources={"VCPU": 8}, count=4),
    )
    assert made.state is AllocationState.PENDING
    return made.id


@pytest.mark.postgres
@pytest.mark.race
@pytest.mark.parametrize("moment", ["before_end", "before_update"])
def test_a_release_racing_the_admission_of_its_request_ends_it(
    moment: str, pg_pair: tuple[Runtime, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, worker_rt = pg_pair
    alloc_id = _borrowing(rt)
    admit = lambda: scheduler.run_cycle(worker_rt)  # noqa: E731
    racers: list[threading.Thread] = []
    if moment == "before_end":
        real_end = claims.end

        def end(*args: Any, **kwargs: Any) -> claims.HostChanges | None:
            racers.append(_concurrently(admit))
            return real_end(*args, **kwargs)

        monkeypatch.setattr(claims, "end", end)
    else:  # the release's statements run on the driver's cursor (db.prepared), not Core
        real_run = Cursor.run

        def run(self: Cursor, prepared: Prepared, params: Any) -> int:
            if prepared.sql.startswith("UPDATE allocations SET state") and not racers:
                racers.append(_concurrently(admit))
            return real_run(self, prepared, params)

        monkeypatch.setattr(Cursor, "run", run)

    out = allocations.release(rt, SYSTEM, alloc_id)
    for racer in racers:
        racer.join(timeout=30)
    assert racers, "the race was not staged"
    assert out.state is AllocationState.RELEASED, f"release answered {out.state}"
    found = audit(rt)
    assert not found.problems + found.known_bugs, found.problems + found.known_bugs
    assert check_consistency(rt).ok


def _blocked_by(rt: Runtime, holder: Connection) -> Callable[[], bool]:
    """Whether some PostgreSQL backend waits for a lock that ``holder``'s transaction
    holds. Each check is a transaction of its own: pg_stat_activity is read once per
    transaction."""
    pid = holder.exec_driver_sql("SELECT pg_backend_pid()").scalar()

    def blocked() -> bool:
        with rt.db.read_conn() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"
                ),
                {"pid": pid},
            ).scalar()
        return bool(waiting)

    return blocked


KEPT, REFUSED = "kept", "refused"
LEGAL = {
    # the keep mark commits first: acknowledged, and the idle release finds it and skips
    (KEPT, AllocationState.ACTIVE, True, None),
    # the idle release commits first: the keep mark is refused, the allocation ended idle
    (REFUSED, AllocationState.RELEASED, False, EndReason.IDLE),
}


@pytest.mark.postgres
@pytest.mark.race
@pytest.mark.parametrize(
    ("moment", "winner"),
    [("while_the_release_holds_the_row", REFUSED), ("between_the_scan_and_the_release", KEPT)],
)
def test_a_keep_mark_racing_the_idle_release_is_honoured(
    moment: str, winner: str, pg_pair: tuple[Runtime, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keep mark (from another process) and the idle release of the same allocation:
    whichever commits first wins, and the loser knows it. Either the keep is acknowledged
    and the allocation stays active and holds what it claimed, or the keep is refused
    (allocation_released) and the allocation ended as idle and gave everything back; never
    a keep acknowledged for an allocation released as idle. Both orders are staged: the
    keep arriving while the release holds the row lock (it waits, then finds it released),
    and the keep landing after the idle scan chose the allocation (the release re-checks
    under the lock and leaves it)."""
    rt, owner_rt = pg_pair
    made = allocations.allocate(
        rt, SYSTEM, AllocationCreate(company="bank", project="app", resources={"VCPU": 2})
    )
    assert made.state is AllocationState.ACTIVE
    past = rt.clock() - timedelta(seconds=10)
    idle.report(rt, SYSTEM, [UtilisationReport(allocation=made.id, utilisation=0.0, at=past)])
    assert idle.tick(rt, rt.clock()) == (1, 0)  # flagged; released at the next tick
    outcomes: list[str] = []

    def keep() -> None:
        try:
            changed = allocations.update_allocation(
                owner_rt, SYSTEM, made.id, AllocationUpdate(keep=True)
            )
        except AllocationReleased:
            outcomes.append(REFUSED)
        else:
            outcomes.append(KEPT if changed.keep else f"answered keep={changed.keep}")

    racers: list[threading.Thread] = []
    if moment == "while_the_release_holds_the_row":
        real_end = claims.end

        def end(conn: Connection, *args: Any, **kwargs: Any) -> claims.HostChanges | None:
            if not racers:  # the row is locked (FOR UPDATE): the keep must wait for it
                racers.append(threading.Thread(target=keep, daemon=True))
                racers[0].start()
                wait_for("the keep mark waits for the release's lock", _blocked_by(rt, conn), 30)
            return real_end(conn, *args, **kwargs)

        monkeypatch.setattr(claims, "end", end)
    else:
        real_release = idle._release_idle

        def release_idle(*args: Any, **kwargs: Any) -> claims.HostChanges | None:
            if not racers:  # nothing holds the row yet: the keep commits first
                racers.append(threading.Thread(target=keep, daemon=True))
                racers[0].start()
                racers[0].join(timeout=30)
            return real_release(*args, **kwargs)

        monkeypatch.setattr(idle, "_release_idle", release_idle)

    flagged, released = idle.tick(rt, rt.clock())
    for racer in racers:
        racer.join(timeout=30)
    assert racers, "the race was not staged"
    assert not any(r.is_alive() for r in racers), "the keep mark never finished"
    assert len(outcomes) == 1, outcomes

    shown = allocations.get_allocation(rt, SYSTEM, made.id)
    outcome = (outcomes[0], shown.state, shown.keep, shown.end_reason)
    assert outcome in LEGAL, f"not a legal outcome: {outcome}"
    assert outcomes[0] == winner, f"the {moment} race did not go the way it was staged"
    assert (flagged, released) == (0, 1 if outcomes[0] == REFUSED else 0)

    # The counters say the same as the rows: held while kept, all returned once released.
    held = 2 if outcomes[0] == KEPT else 0
    assert counters(rt) == {"inventory used": held, "quota used": held, "borrowed": 0, "lent": 0}
    consistency = check_consistency(rt)
    assert consistency.ok, consistency
    found = audit(rt)
    assert not found.problems + found.known_bugs, found.problems + found.known_bugs


@pytest.mark.postgres
@pytest.mark.race
def test_a_release_racing_the_end_of_a_reclaim_leaves_a_true_history(
    pg_pair: tuple[Runtime, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, owner_rt = pg_pair
    borrower = _borrowing(rt)
    assert scheduler.run_cycle(rt).admitted == 1  # bank borrows 8 VCPU of card's or capital's
    lender = next(iter(allocations.get_allocation(rt, SYSTEM, borrower).borrowed))
    nominals = {"card": 24, "capital": 16}
    # The other company uses its whole nominal, so no idle pool can take the loan over ...
    other = next(c for c in nominals if c != lender)
    used = allocations.allocate(
        rt,
        SYSTEM,
        AllocationCreate(
            company=other, project="app", resources={"VCPU": nominals[other] // 2}, count=2
        ),
    )
    assert used.state is AllocationState.ACTIVE
    # ... and the lender wants its whole nominal back: the borrower gets a reclaim notice.
    nominal = nominals[lender]
    allocations.allocate(
        rt,
        SYSTEM,
        AllocationCreate(company=lender, project="app", resources={"VCPU": nominal // 2}, count=2),
    )
    assert scheduler.run_cycle(rt).reclaims_started == 1
    assert allocations.get_allocation(rt, SYSTEM, borrower).state is AllocationState.RECLAIMING
    real_record = events.record
    racers: list[threading.Thread] = []

    def record(conn: Any, actor: str, kind: str, *args: Any, **kwargs: Any) -> None:
        if kind == "allocation.reclaimed" and not racers:
            racers.append(_concurrently(lambda: allocations.release(owner_rt, SYSTEM, borrower)))
        real_record(conn, actor, kind, *args, **kwargs)

    monkeypatch.setattr(events, "record", record)
    reclaims.finish_due(rt, utcnow())
    for racer in racers:
        racer.join(timeout=30)
    assert racers, "the race was not staged"
    found = audit(rt)
    assert not found.problems + found.known_bugs, found.problems + found.known_bugs
    assert check_consistency(rt).ok


@pytest.mark.postgres
def test_a_read_is_one_snapshot(pg_pair: tuple[Runtime, Runtime]) -> None:
    rt, writer_rt = pg_pair
    with rt.db.read() as s:
        before = s.scalar(select(func.count()).select_from(AllocationRow))
        allocations.allocate(
            writer_rt,
            SYSTEM,
            AllocationCreate(company="bank", project="app", resources={"VCPU": 1}),
        )
        after = s.scalar(select(func.count()).select_from(AllocationRow))
    assert before == after, "a read saw a commit made after it began"


@pytest.mark.postgres
@pytest.mark.race
@pytest.mark.parametrize("moment", ["before_move", "after_move"])
def test_a_release_racing_the_move_of_its_loan_to_the_idle_pool_returns_it_once(
    moment: str, pg_pair: tuple[Runtime, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, owner_rt = pg_pair
    borrower = _borrowing(rt)
    assert scheduler.run_cycle(rt).admitted == 1  # bank borrows 8 VCPU of card's or capital's
    lender = next(iter(allocations.get_allocation(rt, SYSTEM, borrower).borrowed))
    nominal = {"card": 24, "capital": 16}[lender]
    # The lender wants its whole nominal back and the other company is idle: the cycle
    # moves the borrower's loan there, while the borrower's owner releases it.
    wanted = allocations.allocate(
        rt,
        SYSTEM,
        AllocationCreate(company=lender, project="app", resources={"VCPU": nominal // 2}, count=2),
    )
    assert wanted.state is AllocationState.PENDING
    real_move = claims.move_loans
    racers: list[threading.Thread] = []

    waited: list[bool] = []

    def move(cur: Any, db: Any, moves: Any) -> None:
        release = lambda: allocations.release(owner_rt, SYSTEM, borrower)  # noqa: E731
        if moment == "before_move" and not racers:
            racers.append(_concurrently(release))  # commits: the move finds it ended
            waited.append(racers[0].is_alive())
        real_move(cur, db, moves)
        if moment == "after_move" and not racers:
            racers.append(_concurrently(release))  # waits for the move's row lock
            waited.append(racers[0].is_alive())

    monkeypatch.setattr(claims, "move_loans", move)
    report = scheduler.run_cycle(rt)
    for racer in racers:
        racer.join(timeout=30)
    assert racers, "the race was not staged"
    # the release waited for the move's lock on the allocation row only when it came after
    assert waited == [moment == "after_move"]
    assert report.reclaims_started == 0
    assert allocations.get_allocation(rt, SYSTEM, borrower).state is AllocationState.RELEASED
    assert check_consistency(rt).ok
    if moment == "before_move":  # the stale move failed; the next cycle admits it
        assert report.admitted == 0
        assert scheduler.run_cycle(rt).admitted == 1
    else:
        assert report.admitted == 1
    assert allocations.get_allocation(rt, SYSTEM, wanted.id).state is AllocationState.ACTIVE
    found = audit(rt)
    assert not found.problems + found.known_bugs, found.problems + found.known_bugs
    assert check_consistency(rt).ok
    assert counters(rt)["borrowed"] == counters(rt)["lent"] == 0


@pytest.mark.postgres
@pytest.mark.race
def test_a_direct_claim_racing_a_repay_of_the_same_free_nominal_wins_alone(
    pg_pair: tuple[Runtime, Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, owner_rt = pg_pair
    own = allocations.allocate(
        rt, SYSTEM, AllocationCreate(company="bank", project="app", resources={"VCPU": 8})
    )
    assert own.state is AllocationState.ACTIVE
    borrower = _borrowing(rt)  # 32 more: 16 of bank's own, 16 borrowed
    assert scheduler.run_cycle(rt).borrowed == 1
    allocations.release(rt, SYSTEM, own.id)  # bank's own 8 are free: a repay is due
    real_repay = claims.repay
    racers: list[threading.Thread] = []
    claimed: list[str] = []

    def take_it() -> None:
        made = allocations.allocate(
            owner_rt,
            SYSTEM,
            AllocationCreate(company="bank", project="app", resources={"VCPU": 8}, queue=False),
        )
        claimed.append(made.state.value)

    def repay(cur: Any, db: Any, moves: Any) -> None:
        if not racers:  # the borrower claims its free nominal before the repay's update
            racers.append(_concurrently(take_it))
        real_repay(cur, db, moves)

    monkeypatch.setattr(claims, "repay", repay)
    scheduler.run_cycle(rt)
    for racer in racers:
        racer.join(timeout=30)
    assert racers, "the race was not staged"
    assert claimed == ["active"]
    # the repay lost: the loan is still held, every counter agrees with the rows
    assert sum(
        n for lenders in allocations.get_allocation(rt, SYSTEM, borrower).borrowed.values()
        for n in lenders.values()
    ) == 16  # fmt: skip
    assert check_consistency(rt).ok
    found = audit(rt)
    assert not found.problems + found.known_bugs, found.problems + found.known_bugs
