"""The public dashboard's figures on a year of demo use, on SQLite and PostgreSQL: the
monthly sums the database makes give what the hourly rollup gives, nothing small is shown,
and the history is seeded."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.disclosure import MINIMUM_ORGANISATIONS, Totals
from fabriek.domain.errors import Conflict
from fabriek.domain.site_load import Running, hourly_it_kw, hours_before
from fabriek.domain.usage import GroupBy, Step, roll_up
from fabriek.services.demo import history as history_service
from fabriek.services.energy.usage import energy_records
from fabriek.services.public_dashboard import last_twelve_months, public_dashboard
from fabriek.store.db import make_engine, make_sessions
from tests.conftest import BACKENDS
from tests.servers import postgres_unavailable, prepare, throwaway_database

NOW = datetime(2026, 6, 15, 12, 30, tzinfo=UTC)


@pytest.fixture(scope="module", params=BACKENDS)
def history_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database with the demo factory and its year of use up to NOW."""
    if request.param == "postgresql" and (why := postgres_unavailable()):
        pytest.skip(why)
    with tempfile.TemporaryDirectory() as tmp, throwaway_database(request.param, Path(tmp)) as url:
        prepare(url)
        engine = make_engine(url)
        with make_sessions(engine)() as session:
            history_service.load_history(session, NOW)
        engine.dispose()
        yield url


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-3)


def test_the_dashboard_adds_up_to_the_hourly_rollup(history_url: str) -> None:
    engine = make_engine(history_url)
    try:
        with make_sessions(engine)() as session:
            start, end = last_twelve_months(NOW)
            d = public_dashboard(session, start, end)
            hourly = energy_records(session, start, end)
    finally:
        engine.dispose()
    [whole] = roll_up(hourly, GroupBy.FACTORY, Step.TOTAL)
    assert d.total is not None and d.organisations == len({r.organisation for r in hourly})
    for mine, theirs in [
        (d.total.gpu_hours, whole.gpu_hours), (d.total.kwh, whole.kwh_facility),
        (d.total.kg_co2e, whole.kg_co2e), (d.total.litres_water, whole.litres_water),
        (d.total.kwh_heat_reused, whole.kwh_heat_reused),
    ]:  # fmt: skip
        assert close(mine, theirs)
    months = {line.period: line for line in roll_up(hourly, GroupBy.FACTORY, Step.MONTH)}
    for p in d.by_month:
        assert close(p.totals.kwh, sum(months[k].kwh_facility for k in p.keys))
    assert [m for p in d.by_month for m in p.keys] == sorted(months)
    assert d.months[0] == start.strftime("%Y-%m") and len(d.months) == 12
    # The carbon series covers the year: every kWh has its intensity.
    assert whole.kwh_without_intensity == 0 and whole.kg_co2e > 0


def test_nothing_smaller_than_three_organisations_is_shown(history_url: str) -> None:
    engine = make_engine(history_url)
    try:
        with make_sessions(engine)() as session:
            d = public_dashboard(session, *last_twelve_months(NOW))
            # A window with fewer than three organisations' use (here none): nothing shown.
            lonely = public_dashboard(session, NOW - timedelta(minutes=1), NOW)
    finally:
        engine.dispose()
    for table in (d.by_province, d.by_hub, d.by_sector, d.by_month):
        assert table and all(p.organisations >= MINIMUM_ORGANISATIONS for p in table)
        total = Totals()
        for p in table:
            total = total + p.totals
        assert d.total is not None and close(total.gpu_hours, d.total.gpu_hours)
    assert any(p.merged for p in d.by_province)
    assert lonely.total is None and not lonely.by_province and not lonely.by_month


def test_the_history_loads_once_and_the_same_everywhere(history_url: str, tmp_path: Path) -> None:
    engine = make_engine(history_url)
    try:
        with make_sessions(engine)() as session, pytest.raises(Conflict):
            history_service.load_history(session, NOW)
    finally:
        engine.dispose()
    if not history_url.startswith("sqlite"):
        return
    seen = []
    for name in ("a", "b"):
        url = f"sqlite:///{tmp_path / name}.db"
        prepare(url)
        engine = make_engine(url)
        with make_sessions(engine)() as session:
            jobs = history_service.load_history(session, NOW)
            seen.append((jobs, public_dashboard(session, *last_twelve_months(NOW)).total))
        engine.dispose()
    assert seen[0] == seen[1] and seen[0][0] > 1000


hours = st.integers(min_value=0, max_value=47)


@given(
    st.dictionaries(hours, st.floats(0, 500, allow_nan=False), max_size=48),
    st.lists(
        st.tuples(st.integers(0, 60 * 60 * 60), st.floats(0, 300, allow_nan=False)), max_size=6
    ),
)
def test_the_hourly_load_holds_the_ledger_and_the_running_jobs_energy(
    ledger: dict[int, float], running: list[tuple[int, float]]
) -> None:
    shown = hours_before(NOW, 48)
    kwh = {shown[h]: v for h, v in ledger.items()}
    jobs = [Running(NOW - timedelta(seconds=s), kw) for s, kw in running]
    load = hourly_it_kw(shown, kwh, jobs, NOW)
    assert len(load) == 48 and all(kw >= 0 for kw in load)
    # Energy over the window: the ledger's, plus each running job's from when it (or the
    # window) started up to now; nothing after now.
    window_s = [min(s, (NOW - shown[0]).total_seconds()) for s, _ in running]
    expected = sum(ledger.values()) + sum(
        kw * s / 3600 for (_, kw), s in zip(running, window_s, strict=True)
    )
    assert math.isclose(sum(load), expected, rel_tol=1e-9, abs_tol=1e-6)
