"""Property tests of where a job can ever run, checked against the scheduler itself."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fabriek.domain.capacity import SiteShape, why_never_fits
from fabriek.domain.jobs import JobSpec
from fabriek.domain.sites import NodeGroup
from fabriek.scheduler import Allocation, PendingJob, Snapshot, Start, schedule, site_from_groups

TYPES = ["h100", "a100", "l40s"]

groups = st.builds(
    NodeGroup,
    name=st.sampled_from(["g1", "g2", "g3"]),
    count=st.integers(1, 8),
    gpu_type=st.sampled_from(TYPES),
    gpus_per_node=st.integers(1, 8),
    cpus_per_node=st.integers(1, 128),
    memory_gb_per_node=st.integers(1, 2048),
)
sites = st.lists(
    st.builds(
        SiteShape,
        name=st.sampled_from(["a", "b", "c", "d"]),
        groups=st.lists(groups, min_size=1, max_size=3, unique_by=lambda g: g.name).map(tuple),
        max_time_s=st.just(86400),
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda s: s.name,
)
specs = st.builds(
    JobSpec,
    name=st.just("j"),
    command=st.just(("true",)),
    gpus=st.integers(1, 80),
    gpu_type=st.sampled_from([None, *TYPES]),
    time_limit_s=st.just(3600),
)


@settings(max_examples=200)
@given(specs, sites)
def test_submission_check_agrees_with_the_scheduler(spec: JobSpec, shapes: list[SiteShape]) -> None:
    """A job the submission check lets through starts at once in an empty factory; one it
    refuses, the scheduler could never start either."""
    snapshot = Snapshot(
        now_s=0.0,
        pending=[PendingJob(1, "p", "u", spec.gpus, spec.time_limit_s, 0.0, spec.gpu_type)],
        running=[],
        sites=[site_from_groups(s.name, s.groups) for s in shapes],
        allocations={"p": Allocation("p", "o")},
    )
    started = any(isinstance(d, Start) for d in schedule(snapshot).decisions)
    assert started == (why_never_fits(spec, shapes) is None)


def test_refusals_name_the_field_and_the_numbers() -> None:
    site = SiteShape("s", (NodeGroup("g", 4, "h100", 8, 64, 512),), 3600)
    assert why_never_fits(JobSpec("j", ("x",), gpus=32, gpu_type="h100"), [site]) is None
    field, reason = why_never_fits(JobSpec("j", ("x",), gpus=40, gpu_type="h100"), [site]) or (
        "",
        "",
    )
    assert field == "gpus" and "is 32" in reason
    assert why_never_fits(JobSpec("j", ("x",), gpus=1, gpu_type="mi300x"), [site]) == (
        "gpu_type",
        "no site has mi300x GPUs",
    )
    too_long = why_never_fits(JobSpec("j", ("x",), gpus=1, time_limit_s=7200), [site])
    assert too_long is not None and too_long[0] == "time_limit"
