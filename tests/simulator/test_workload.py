"""The financial-group generator: seeded, and shaped like the group's week."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone

import pytest

from groupcloud.simulator.demand import Request
from groupcloud.simulator.workload import generate, last_business_days, month_end_nights

SEOUL = timezone(timedelta(hours=9))
MONDAY = datetime(2027, 1, 25, tzinfo=SEOUL)  # the week of January's month-end


@pytest.fixture(scope="module")
def week() -> list[Request]:
    return generate(MONDAY, 7, seed=3)


def local(r: Request) -> datetime:
    return MONDAY + timedelta(seconds=r.arrival_s)


def count(requests: list[Request], keep: Callable[[Request], bool]) -> int:
    return sum(1 for r in requests if keep(r))


def test_the_same_seed_gives_the_same_trace_and_another_seed_another() -> None:
    assert generate(MONDAY, 7, seed=3) == generate(MONDAY, 7, seed=3)
    assert generate(MONDAY, 7, seed=3) != generate(MONDAY, 7, seed=4)


def test_a_company_s_requests_do_not_depend_on_the_other_companies() -> None:
    alone = generate(MONDAY, 7, seed=3, companies=["card"])
    assert alone == [r for r in generate(MONDAY, 7, seed=3) if r.company == "card"]


def test_requests_arrive_in_order_within_the_horizon_on_whole_minutes(
    week: list[Request],
) -> None:
    arrivals = [r.arrival_s for r in week]
    assert arrivals == sorted(arrivals)
    assert arrivals[0] >= 0
    assert arrivals[-1] < 7 * 86400
    assert all(r.arrival_s % 60 == 0 and r.duration_s % 60 == 0 for r in week)
    assert {r.company for r in week} == {"bank", "card", "capital", "savings"}


def test_bank_oltp_peaks_in_business_hours_on_weekdays(week: list[Request]) -> None:
    oltp = [r for r in week if r.company == "bank" and r.kind == "oltp"]
    weekday = [r for r in oltp if local(r).weekday() < 5]
    day = count(weekday, lambda r: 9 <= local(r).hour < 17)
    night = count(weekday, lambda r: 0 <= local(r).hour < 8)
    assert day > 4 * night
    weekend = count(oltp, lambda r: local(r).weekday() >= 5)
    assert len(weekday) / 5 > 1.5 * weekend / 2  # per day: a third of the rate at weekends


def test_card_peaks_in_the_evening_and_at_weekends(week: list[Request]) -> None:
    oltp = [r for r in week if r.company == "card" and r.kind == "oltp"]
    evening = count(oltp, lambda r: 18 <= local(r).hour < 23)
    morning = count(oltp, lambda r: 6 <= local(r).hour < 11)
    assert evening > 3 * morning
    weekend = count(oltp, lambda r: local(r).weekday() >= 5)
    assert weekend / 2 > (len(oltp) - weekend) / 5


def test_month_end_batch_runs_the_nights_after_the_last_two_business_days(
    week: list[Request],
) -> None:
    assert last_business_days(2027, 1) == [date(2027, 1, 28), date(2027, 1, 29)]
    assert month_end_nights(datetime(2027, 1, 28, 23, tzinfo=SEOUL))
    assert month_end_nights(datetime(2027, 1, 30, 5, tzinfo=SEOUL))
    assert not month_end_nights(datetime(2027, 1, 27, 23, tzinfo=SEOUL))
    assert not month_end_nights(datetime(2027, 1, 29, 12, tzinfo=SEOUL))
    batch = [r for r in week if r.kind == "batch"]
    assert {r.company for r in batch} == {"bank"}
    in_window = count(batch, lambda r: month_end_nights(local(r)))
    assert in_window > 0.8 * len(batch)
    # A week without a month-end has only the light nightly batch.
    mid_month = generate(datetime(2027, 2, 8, tzinfo=SEOUL), 7, seed=3, companies=["bank"])
    assert count(mid_month, lambda r: r.kind == "batch") < len(batch) / 3


def test_gpu_jobs_arrive_at_night(week: list[Request]) -> None:
    gpu = [r for r in week if "GPU" in r.resources]
    assert gpu
    assert all(r.kind == "gpu" for r in gpu)
    at_night = count(gpu, lambda r: local(r).hour >= 22 or local(r).hour < 6)
    assert at_night > 0.9 * len(gpu)


def test_capital_and_savings_are_smaller_than_bank_and_card(week: list[Request]) -> None:
    def vcpu_hours(company: str) -> float:
        return sum(r.resources["VCPU"] * r.duration_s / 3600 for r in week if r.company == company)

    assert max(vcpu_hours("capital"), vcpu_hours("savings")) < min(
        vcpu_hours("bank"), vcpu_hours("card")
    )


def test_scale_multiplies_the_rates_and_a_naive_start_is_refused() -> None:
    assert len(generate(MONDAY, 7, seed=3, scale=2)) > 1.6 * len(generate(MONDAY, 7, seed=3))
    with pytest.raises(ValueError, match="UTC offset"):
        generate(datetime(2027, 1, 25), 1, seed=0)
