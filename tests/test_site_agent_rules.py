"""The site agent's pure rules: telling drift from change, and reading Slurm's output."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fabriek.site_agent.reconcile import differences, verdict
from fabriek.site_agent.sacctmgr import (
    clean_description,
    parse_assocs,
    tres,
    used_gpu_minutes,
    valid_name,
    wall_minutes,
)

values = st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 3), max_size=3)


@given(values, values, st.one_of(st.none(), values))
def test_a_thing_as_wanted_needs_nothing_whatever_was_applied_before(
    current: dict[str, int], wanted: dict[str, int], last: dict[str, int] | None
) -> None:
    found = verdict(current, wanted, last)
    assert (found == "same") == (current == wanted)
    if found != "same":
        # Drift exactly when the agent applied something and the site no longer shows it.
        assert (found == "drift") == (last is not None and current != last)


@given(values, values)
def test_a_new_wish_over_what_was_applied_is_a_change_not_drift(
    applied: dict[str, int], wanted: dict[str, int]
) -> None:
    assert verdict(applied, wanted, applied) in {"same", "applied"}
    assert verdict(None, wanted, None) == "applied"  # a first run
    assert verdict(None, wanted, wanted) == "drift"  # removed by hand


def test_differences_name_each_field_found_and_wanted() -> None:
    found = {"gpu_minutes_limit": 999, "qos": ["a"], "description": "x"}
    wanted = {"gpu_minutes_limit": 600, "qos": ["a", "b"], "description": "x"}
    assert differences(found, wanted) == "gpu_minutes_limit 999 -> 600; qos a -> a,b"
    assert differences(None, wanted) == "missing"


@given(st.integers(0, 30), st.integers(0, 23), st.integers(0, 59))
def test_wall_times_in_slurms_forms(days: int, hours: int, minutes: int) -> None:
    total = (days * 24 + hours) * 60 + minutes
    assert wall_minutes(f"{days}-{hours:02d}:{minutes:02d}:00") == total
    assert wall_minutes(f"{days * 24 + hours:02d}:{minutes:02d}:00") == total
    assert wall_minutes("") is None and wall_minutes("UNLIMITED") is None
    assert wall_minutes("00:00:30") == 1  # a started minute counts


def test_slurm_output_as_captured() -> None:
    # From `scontrol -o show assoc_mgr accounts=fabproj flags=assoc` on Slurm 22.05.
    line = (
        "ClusterName=agplay Account=fabproj UserName= Partition= Priority=0 ID=3 "
        "GrpTRESMins=cpu=N(0),mem=N(0),energy=N(0),node=N(0),billing=N(0),fs/disk=N(0),"
        "vmem=N(0),pages=N(0),gres/gpu=100(37) GrpTRESRunMins=cpu=N(0),gres/gpu=N(5)\n"
        "ClusterName=agplay Account=fabproj UserName=fab-play(1900200999) Partition= "
        "GrpTRESMins=cpu=N(0),gres/gpu=N(37)"
    )
    assert used_gpu_minutes(line) == 37
    assert tres("gres/gpu=100,cpu=5") == {"gres/gpu": 100, "cpu": 5}
    # From `sacctmgr -P -n show assoc format=Account,User,GrpTRESMins,QOS,DefaultQOS,
    # MaxSubmitJobs,GrpSubmitJobs`.
    rows = parse_assocs(
        "root||||normal|||\nfabproj||gres/gpu=100|fabq1,fabq2|fabq1||\n"
        "fabproj|fab-play||fabq1,fabq2|fabq1|0|\n"
    )
    assert rows[1].limits == {"gres/gpu": 100} and rows[1].qos == ("fabq1", "fabq2")
    assert rows[2].user == "fab-play" and rows[2].max_submit_jobs == "0"


@given(st.text(max_size=80))
def test_a_description_never_breaks_parsable_output(text: str) -> None:
    cleaned = clean_description(text)
    assert "|" not in cleaned and "\n" not in cleaned and cleaned == cleaned.lower()


def test_only_plain_names_reach_sacctmgr() -> None:
    assert valid_name("dutch-llm") and valid_name("fab_ann.2")
    for bad in ("a,b", "x=y", "Upper", "", "-flag", "a b", "ümlaut"):
        assert not valid_name(bad)
