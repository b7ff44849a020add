"""Reading traces: good rows, and one-line errors that name the line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from fabriek.scheduler import TraceError, load_trace, parse_trace


def parse(text: str) -> list[object]:
    return list(parse_trace(text.splitlines(keepends=True), "t.csv"))


def test_minimal_and_optional_columns() -> None:
    rows = parse_trace(
        [
            "job_id,submit_time_s,duration_s,num_gpus,tenant,time_limit_s,gpu_type,extra\n",
            "a,0,10,1,,,,x\n",
            "b,5.5,20,8,t1,60,h100,y\n",
        ],
        "t.csv",
    )
    assert rows[0].tenant is None and rows[0].time_limit_s is None and rows[0].gpu_type is None
    assert (rows[1].tenant, rows[1].time_limit_s, rows[1].gpu_type) == ("t1", 60.0, "h100")
    assert rows[1].num_gpus == 8 and rows[1].submit_time_s == 5.5


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("job_id,submit_time_s,num_gpus\na,0,1\n", "line 1: missing column duration_s"),
        ("job_id,submit_time_s,duration_s,num_gpus\na,0,-5,1\n", "line 2, column duration_s"),
        ("job_id,submit_time_s,duration_s,num_gpus\na,0,5,x\n", "line 2, column num_gpus"),
        ("job_id,submit_time_s,duration_s,num_gpus\na,0,5,1\nb,z,5,1\n", "line 3, column submit"),
        ("job_id,submit_time_s,duration_s,num_gpus\na,0,5,1.5\n", "line 2, column num_gpus"),
        ("job_id,submit_time_s,duration_s,num_gpus\na,0,5,0\n", "line 2, column num_gpus"),
        ("job_id,submit_time_s,duration_s,num_gpus\na,0,nan,1\n", "line 2, column duration_s"),
        ("job_id,submit_time_s,duration_s,num_gpus\na,0,5,1\na,1,5,1\n", "line 3, column job_id"),
        ("job_id,submit_time_s,duration_s,num_gpus\na,0,,1\n", "line 2, column duration_s"),
        (
            "job_id,submit_time_s,duration_s,num_gpus,time_limit_s\na,0,5,1,0\n",
            "line 2, column time_limit_s",
        ),
        ("", "empty"),
    ],
)
def test_bad_input_is_one_line_naming_where(text: str, where: str) -> None:
    with pytest.raises(TraceError) as caught:
        parse(text)
    message = str(caught.value)
    assert where in message
    assert "\n" not in message and message.startswith("t.csv")


def test_load_trace_from_file(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("job_id,submit_time_s,duration_s,num_gpus\nj,0,1,1\n\n")
    assert len(load_trace(path)) == 1
    with pytest.raises(TraceError, match="cannot read"):
        load_trace(tmp_path / "missing.csv")
