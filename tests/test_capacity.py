"""Property tests of where a job can ever run, and of first fit among sites with room."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.capacity import SiteShape, first_fit, group_fits, why_never_fits
from fabriek.domain.jobs import JobSpec
from fabriek.domain.sites import NodeGroup

TYPES = ["h100", "a100", "l40s"]

groups = st.builds(
    NodeGroup,
    name=st.just("g"),
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
        groups=st.lists(groups, min_size=1, max_size=3).map(tuple),
        max_time_s=st.sampled_from([3600, 86400]),
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda s: s.name,
)
specs = st.builds(
    JobSpec,
    name=st.just("j"),
    command=st.just(("true",)),
    gpus=st.integers(0, 80),
    gpu_type=st.sampled_from([None, *TYPES]),
    nodes=st.integers(1, 4),
    time_limit_s=st.sampled_from([60, 7200, 100000]),
)


def capacity(site: SiteShape, gpu_type: str | None) -> int:
    return sum(g.count * g.gpus_per_node for g in site.groups if g.gpu_type == gpu_type)


@given(specs, sites, st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 64)))
def test_first_fit_never_overfills_a_site(
    spec: JobSpec, shapes: list[SiteShape], busy_gpus: dict[str, int]
) -> None:
    busy = {s.name: {t: busy_gpus.get(s.name, 0) for t in TYPES} for s in shapes}
    choice = first_fit(spec, shapes, busy)
    if choice is None:
        return
    name, gpu_type = choice.site, choice.gpu_type
    site = next(s for s in shapes if s.name == name)
    assert spec.time_limit_s <= site.max_time_s
    assert any(group_fits(spec, g) for g in site.groups)
    if spec.gpus:
        assert spec.gpu_type in (None, gpu_type)
        assert busy[name][gpu_type] + spec.gpus <= capacity(site, gpu_type)


@given(specs, sites)
def test_an_empty_factory_starts_every_job_that_can_ever_fit(
    spec: JobSpec, shapes: list[SiteShape]
) -> None:
    never = why_never_fits(spec, shapes)
    placed = first_fit(spec, shapes, {})
    assert (never is None) == (placed is not None)


@given(specs, sites, st.integers(0, 64))
def test_queue_depth_only_adds_room(spec: JobSpec, shapes: list[SiteShape], depth: int) -> None:
    busy = {s.name: dict.fromkeys(TYPES, 8) for s in shapes}
    without = first_fit(spec, shapes, busy)
    with_depth = first_fit(spec, shapes, busy, queue_depth={s.name: depth for s in shapes})
    if without is not None:
        assert with_depth is not None


def test_a_big_job_gets_whole_nodes_of_one_group() -> None:
    site = SiteShape("s", (NodeGroup("g", 4, "h100", 8, 64, 512),), 3600)
    assert why_never_fits(JobSpec("j", ("x",), gpus=32, gpu_type="h100"), [site]) is None
    fit = first_fit(JobSpec("j", ("x",), gpus=32, gpu_type="h100"), [site], {})
    assert fit is not None and fit.nodes == 4
    assert first_fit(JobSpec("j", ("x",), gpus=8, gpu_type="h100"), [site], {}).nodes == 1  # type: ignore[union-attr]
    field, reason = why_never_fits(JobSpec("j", ("x",), gpus=40, gpu_type="h100"), [site]) or (
        "",
        "",
    )
    assert field == "gpus" and "32 GPUs" in reason
    assert why_never_fits(JobSpec("j", ("x",), gpus=1, gpu_type="mi300x"), [site]) == (
        "gpu_type",
        "no site has mi300x GPUs",
    )
    assert (
        why_never_fits(JobSpec("j", ("x",), gpus=1, time_limit_s=7200), [site])[0] == "time_limit"
    )  # type: ignore[index]
