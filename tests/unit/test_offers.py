"""The offer engine against a brute-force reference (hypothesis), and the price catalog:
the shipped file loads and is sane, broken files are refused naming line and column."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from groupcloud.domain.offers import Offer
from groupcloud.placement.offers import OfferBook, OfferRequest
from groupcloud.providers.prices import COLUMNS, PriceCatalogError, load_prices, parse_prices

REGIONS = [("p1", "r1"), ("p1", "r2"), ("p2", "r1")]
MODELS = [None, "T4", "A100"]

offers_st = st.lists(
    st.builds(
        lambda pr, i, vcpu, mem, gpu, model, price: Offer(
            provider=pr[0],
            region=pr[1],
            instance_type=f"t{i}",
            vcpu=vcpu,
            memory_mb=mem,
            price_per_hour=Decimal(price),
            gpu=gpu if model else 0,
            gpu_model=model if gpu else None,
        ),
        st.sampled_from(REGIONS),
        st.integers(0, 10_000),
        st.integers(1, 64),
        st.integers(0, 262_144),
        st.integers(0, 8),
        st.sampled_from(MODELS),
        st.integers(1, 5_000),
    ),
    max_size=40,
    unique_by=lambda o: (o.provider, o.region, o.instance_type),
)
requests_st = st.builds(
    OfferRequest,
    vcpu=st.integers(0, 64),
    memory_mb=st.integers(0, 262_144),
    gpu=st.integers(0, 8),
    gpu_model=st.sampled_from(MODELS),
)
allowed_st = st.one_of(st.none(), st.sets(st.sampled_from(REGIONS)))


def _reference(
    offers: list[Offer], need: OfferRequest, allowed: set[tuple[str, str]] | None
) -> list[Offer]:
    fits = [
        o
        for o in offers
        if (allowed is None or (o.provider, o.region) in allowed)
        and o.vcpu >= need.vcpu
        and o.memory_mb >= need.memory_mb
        and o.gpu >= need.gpu
        and (need.gpu_model is None or o.gpu_model == need.gpu_model)
    ]
    return sorted(fits, key=lambda o: (o.price_per_hour, o.provider, o.region, o.instance_type))


@given(offers_st, requests_st, allowed_st, st.integers(1, 6))
def test_cheapest_is_the_brute_force_answer(
    offers: list[Offer], need: OfferRequest, allowed: set[tuple[str, str]] | None, limit: int
) -> None:
    book = OfferBook(offers)
    assert book.cheapest(need, allowed, limit=limit) == _reference(offers, need, allowed)[:limit]


@given(offers_st, st.lists(st.tuples(requests_st, allowed_st), max_size=12))
def test_choose_many_is_the_first_of_cheapest(
    offers: list[Offer], asked: list[tuple[OfferRequest, set[tuple[str, str]] | None]]
) -> None:
    book = OfferBook(offers)
    chosen = book.choose_many([r for r, _ in asked], [a for _, a in asked])
    assert chosen == [next(iter(book.cheapest(r, a, limit=1)), None) for r, a in asked]


def test_edge_cases() -> None:
    empty = OfferBook([])
    assert empty.cheapest(OfferRequest(1, 1)) == []
    assert empty.choose_many([OfferRequest(1, 1)], [None]) == [None]
    book = OfferBook(load_prices())
    assert book.cheapest(OfferRequest(1, 1), set()) == []  # no region allowed
    assert book.cheapest(OfferRequest(10_000, 1)) == []  # nothing that big
    assert book.cheapest(OfferRequest(1, 1), {("nope", "x")}) == []
    assert book.cheapest(OfferRequest(1, 1, 1, "H100")) == []  # unknown model
    with pytest.raises(ValueError, match="one allowed set per request"):
        book.choose_many([OfferRequest(1, 1)], [])
    assert ("sim", "kr-central-1") in book.regions()


def test_the_shipped_catalog_is_sane() -> None:
    offers = load_prices()
    assert len(offers) >= 40
    assert {o.provider for o in offers} == {"sim", "aws"}
    for o in offers:
        assert o.price_per_hour > 0
        assert o.vcpu > 0
        assert o.memory_mb > 0
        assert (o.gpu > 0) == (o.gpu_model is not None)
    by_key = {(o.provider, o.region, o.instance_type): o.price_per_hour for o in offers}
    for (provider, region, kind), price in by_key.items():
        if region == "kr-central-1":  # Korea costs more than the US, as in reality
            assert price > by_key[provider, "us-east-1", kind]


HEADER = ",".join(COLUMNS)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("provider,region\nsim,r\n", "missing column(s): instance_type"),
        (f"{HEADER}\nsim,r,t,x,1,0,,10\n", ":2: column vcpu: not a whole number"),
        (f"{HEADER}\nsim,r,t,2,1,0,,0\n", ":2: column price_per_hour_krw: must be > 0"),
        (f"{HEADER}\nsim,r,t,2,1,0,,abc\n", ":2: column price_per_hour_krw: not a number"),
        (f"{HEADER}\nsim,r,t,2,1,0,,5\nsim,r,t,4,1,0,,9\n", ":3: sim/r/t is listed twice"),
        (f"{HEADER}\nsim,r,t,2,1,1,,5\n", ":2: column gpu_model: required when gpu > 0"),
        (f"{HEADER}\nsim,r,t,2,-1,0,,5\n", ":2: column memory_mb: negative"),
        (f"{HEADER}\nsim,r,t,2\n", ":2: expected 8 columns"),
        (f"{HEADER}\n,r,t,2,1,0,,5\n", ":2: provider, region and instance_type are required"),
    ],
)
def test_broken_catalogs_are_refused_naming_line_and_column(
    tmp_path: Path, body: str, message: str
) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(body)
    with pytest.raises(PriceCatalogError) as refused:
        load_prices(path)
    assert message in str(refused.value)
    assert str(refused.value).startswith(str(path))


def test_an_operator_catalog_replaces_the_shipped_one(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(f"{HEADER}\nmine,r1,big,64,262144,8,A100,123456.5\n")
    (offer,) = load_prices(path)
    assert offer.price_per_hour == Decimal("123456.5")
    assert (offer.gpu, offer.gpu_model) == (8, "A100")
    with pytest.raises(PriceCatalogError, match="cannot read"):
        load_prices(tmp_path / "missing.csv")
    assert parse_prices(HEADER + "\n") == []
