"""Energy and carbon per 1,000 tokens of an endpoint, from the energy ledger's records of
its replicas' jobs and the tokens metered; and the model version's AI Act ledger showing
that inference energy apart from training. On the store (SQLite), through the services."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.ai_act.models import ModelDraft, ModelVersionDraft
from fabriek.domain.gateway import UsageDelta, UsageKey
from fabriek.services.ai_act import ledger, versions
from fabriek.services.endpoints.energy import endpoint_energy
from fabriek.services.endpoints.metering import Meter
from fabriek.services.identity.tokens import principal_for_user
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import (
    GridIntensityRow,
    JobEnergyRow,
    JobRow,
    ProjectRow,
    SiteRow,
    UserRow,
)
from fabriek.store.tables.ai_act import AiModelJobRow, AiModelVersionRow
from fabriek.store.tables.endpoints import EndpointReplicaRow, EndpointRow, EndpointUsageRow
from tests.servers import postgres_unavailable, prepare, throwaway_database


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    with throwaway_database("sqlite", tmp_path) as url:
        prepare(url)
        engine = make_engine(url)
        with make_sessions(engine)() as s:
            yield s
        engine.dispose()


def test_energy_per_1000_tokens_and_the_ai_act_ledgers_inference_line(session: Session) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    pieter = session.scalars(select(UserRow).where(UserRow.username == "pieter")).one()
    who = principal_for_user(session, pieter.id, "pieter")
    versions.create_model(
        session, who,
        ModelDraft(name="tiny-nl", project="dutch-llm", provider="TU Delft",
                   first_version=ModelVersionDraft(version="1")),
        now,
    )  # fmt: skip
    version = session.scalars(select(AiModelVersionRow)).one()
    project = session.scalars(select(ProjectRow).where(ProjectRow.name == "dutch-llm")).one()
    site = session.scalars(select(SiteRow).order_by(SiteRow.id)).first()
    assert site is not None
    endpoint = EndpointRow(project_id=project.id, name="chat", model="tiny-nl:1",
                           model_version_id=version.id, min_replicas=0, max_replicas=0)  # fmt: skip
    session.add(endpoint)
    job = JobRow(project_id=project.id, user_id=pieter.id, name="endpoint-chat", gpus=1, nodes=1,
                 cpus=1, memory_gb=8, time_limit_s=86400, state="completed", site_id=site.id,
                 started_at=now - timedelta(hours=2), ended_at=now, submitted_at=now - timedelta(hours=2))  # fmt: skip
    session.add(job)
    session.flush()
    session.add(EndpointReplicaRow(endpoint_id=endpoint.id, job_id=job.id, model="tiny-nl:1",
                                   model_version_id=version.id, state="ended"))  # fmt: skip
    for hours_ago in (2, 1):
        hour = now - timedelta(hours=hours_ago)
        session.add(JobEnergyRow(job_id=job.id, site_id=site.id, hour=hour, gpu_seconds=3600.0,
                                 gpu_kwh=0.4, cpu_kwh=0.1, source="modelled"))  # fmt: skip
        session.merge(GridIntensityRow(zone=site.grid_zone, hour=hour, g_per_kwh=200.0, source="t"))
    # A fine-tuning run of the same version, linked to it: its energy is training's.
    training = JobRow(project_id=project.id, user_id=pieter.id, name="finetune", gpus=1, nodes=1,
                      cpus=1, memory_gb=8, time_limit_s=86400, state="completed", site_id=site.id,
                      started_at=now - timedelta(hours=3), ended_at=now - timedelta(hours=2),
                      submitted_at=now - timedelta(hours=3))  # fmt: skip
    session.add(training)
    session.flush()
    session.add(AiModelJobRow(job_id=training.id, version_id=version.id, purpose="fine-tuning",
                              projected_flop=1e18, created_at=now))  # fmt: skip
    session.add(JobEnergyRow(job_id=training.id, site_id=site.id, hour=now - timedelta(hours=3),
                             gpu_seconds=3600.0, gpu_kwh=0.7, cpu_kwh=0.5, source="modelled"))  # fmt: skip
    session.add(EndpointUsageRow(endpoint_id=endpoint.id, project_id=project.id, caller="user:1",
                                 user_id=pieter.id, day=now.date(), requests=10,
                                 failed_requests=0, prompt_tokens=60_000, completion_tokens=40_000))  # fmt: skip
    session.commit()

    (found,) = endpoint_energy(
        session, who, "dutch-llm", now.date() - timedelta(days=1), date.today()
    )
    facility = 1.0 * site.pue  # two hours of 0.5 kWh IT, times the site's PUE
    assert found.tokens == 100_000 and found.gpu_hours == pytest.approx(2.0)
    assert found.facility_kwh == pytest.approx(facility)
    assert found.kwh_per_1k_tokens == pytest.approx(facility / 100)
    assert found.g_co2e_per_1k_tokens == pytest.approx(facility * 200 / 100)

    book = ledger.ledger(session, who, "tiny-nl:1", now)
    assert book.inference is not None and book.inference.replica_jobs == 1
    assert book.inference.facility_mwh == pytest.approx(facility / 1000)
    assert book.inference.kwh_per_1k_tokens == pytest.approx(facility / 100)
    # Serving is not training: the version's training energy is the fine-tuning run's
    # 1.2 kWh alone, and the inference line none of it.
    assert book.energy.it_mwh == pytest.approx(1.2 / 1000)
    assert book.inference.it_mwh == pytest.approx(1.0 / 1000)  # the replica's 2 x 0.5 kWh
    assert book.inference.replica_jobs == 1


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_usage_written_in_batches_adds_up_and_is_never_counted_twice(
    kind: str, tmp_path: Path
) -> None:
    if kind == "postgresql" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    with throwaway_database(kind, tmp_path) as url:
        prepare(url)
        engine = make_engine(url)
        sessions = make_sessions(engine)
        with sessions() as s:
            project = s.scalars(select(ProjectRow).where(ProjectRow.name == "dutch-llm")).one()
            endpoint = EndpointRow(project_id=project.id, name="chat", model="m", min_replicas=0)
            s.add(endpoint)
            s.commit()
            where = UsageKey(endpoint.id, project.id, "user:1", None, None, date(2026, 12, 5))
        # Two gateway processes, each with its own meter, flushing twice.
        first, second = Meter(), Meter()
        at = datetime.now(UTC)
        first.add(where, UsageDelta(1, 0, 10, 5), at)
        second.add(where, UsageDelta(2, 1, 20, 7), at)
        assert first.flush(sessions) == 1 and second.flush(sessions) == 1
        first.add(where, UsageDelta(1, 0, 1, 1), at)
        assert first.flush(sessions) == 1
        assert first.flush(sessions) == 0  # nothing new: nothing written again
        with sessions() as s:
            (row,) = s.scalars(select(EndpointUsageRow)).all()
            assert (
                row.requests,
                row.failed_requests,
                row.prompt_tokens,
                row.completion_tokens,
            ) == (4, 1, 31, 13)
            assert s.get(EndpointRow, endpoint.id).last_request_at is not None  # type: ignore[union-attr]
        engine.dispose()
