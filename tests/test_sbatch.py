"""Reading job input as Slurm users write it: examples, error messages and properties."""

from __future__ import annotations

import contextlib
import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.errors import InvalidInput
from fabriek.domain.sbatch import (
    SbatchDirectives,
    parse_duration,
    parse_sbatch_script,
    spec_from_script,
)

MAX_S = 365 * 86400


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 5400),
        ("1:30", 90),
        ("01:00:00", 3600),
        ("0:90:00", 5400),  # Slurm does not check that fields stay under 60
        ("2-0", 2 * 86400),
        ("1-12", 86400 + 12 * 3600),
        ("1-2:30", 86400 + 2 * 3600 + 30 * 60),
        ("1-00:00:01", 86401),
        (" 30 ", 1800),
        ("90s", 90),
        ("30m", 1800),
        ("1h", 3600),
        ("1h30m", 5400),
        ("2d", 2 * 86400),
        ("1d2h3m4s", 93784),
        ("1H30M", 5400),
    ],
)
def test_durations_in_every_accepted_form(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("UNLIMITED", "needs a time limit"),
        ("infinite", "needs a time limit"),
        ("-1", "needs a time limit"),
        ("0", "more than zero"),
        ("0:00:00", "more than zero"),
        ("0h", "more than zero"),
        ("soon", "not a duration"),
        ("", "not a duration"),
        ("1h1d", "not a duration"),
        ("1.5h", "not a duration"),
        ("-5", "not a duration"),
        ("1:2:3:4", "not a duration"),
        ("400d", "at most 365 days"),
        ("١٢", "not a duration"),  # Arabic-Indic digits: int() would take them, Slurm not
    ],
)
def test_bad_durations_say_what_is_accepted(text: str, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_duration(text)
    assert says in caught.value.detail
    assert caught.value.problems[0].field == "time"
    if says == "not a duration":
        assert "D-HH:MM:SS" in caught.value.detail and "1h30m" in caught.value.detail


small = st.integers(min_value=0, max_value=99)


@given(d=st.integers(0, 300), h=small, m=small, s=small, form=st.integers(0, 5))
def test_every_slurm_time_format_round_trips(d: int, h: int, m: int, s: int, form: int) -> None:
    text, expected = [
        (f"{m}", m * 60),
        (f"{m}:{s:02d}", m * 60 + s),
        (f"{h}:{m:02d}:{s:02d}", h * 3600 + m * 60 + s),
        (f"{d}-{h}", d * 86400 + h * 3600),
        (f"{d}-{h:02d}:{m:02d}", d * 86400 + h * 3600 + m * 60),
        (f"{d}-{h:02d}:{m:02d}:{s:02d}", d * 86400 + h * 3600 + m * 60 + s),
    ][form]
    if 0 < expected <= MAX_S:
        assert parse_duration(text) == expected
    else:
        with pytest.raises(InvalidInput):
            parse_duration(text)


@given(seconds=st.integers(1, MAX_S))
def test_a_duration_written_friendly_round_trips(seconds: int) -> None:
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    parts = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
    assert parse_duration("".join(f"{n}{u}" for n, u in parts if n)) == seconds


@given(st.text(max_size=40))
def test_duration_parser_raises_only_invalid_input(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        assert 0 < parse_duration(text) <= MAX_S


@pytest.mark.parametrize(
    ("text", "gb"),
    [
        ("4096", 4),
        ("4097", 5),
        ("1", 1),
        ("16G", 16),
        ("16gb", 16),
        ("500M", 1),
        ("1T", 1024),
        ("512K", 1),
        ("1048576K", 1),
        ("1048577k", 2),
    ],
)
def test_memory_as_sbatch_takes_it_rounded_up_to_gb(text: str, gb: int) -> None:
    assert memory_gb(text) == gb


def memory_gb(text: str) -> int | None:
    """The memory of a script whose one directive is `--mem=<text>` (quoted for the shell)."""
    return parse_sbatch_script(f"#SBATCH --mem={shlex.quote(text)}\n").memory_gb


@pytest.mark.parametrize("text", ["", "lots", "16 GiB", "100B", "-4G", "1.5G", "0K1"])
def test_bad_memory_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        memory_gb(text)
    assert caught.value.problems[0].field == "script"
    assert caught.value.detail.startswith(f"line 1: --mem={text}: ")


@given(mb=st.integers(1, 10**8))
def test_memory_in_megabytes_rounds_up(mb: int) -> None:
    assert memory_gb(str(mb)) == -(-mb // 1024)
    assert memory_gb(f"{mb}M") == memory_gb(str(mb))


# One line of text: a line break would end the directive.
ONE_LINE = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=30)


@given(ONE_LINE)
def test_memory_parser_raises_only_invalid_input(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        found = memory_gb(text)
        if text.strip() in ("0", "0G", "0M"):
            assert found is None  # all of a node's memory: set aside, with a note
        else:
            assert found is not None and found > 0


TRAINING = """#!/bin/bash
#SBATCH --job-name="train llm"   # the name has a blank, so it is quoted
#SBATCH -N 2 -c 8 --mem 64G
#SBATCH --gres=gpu:h100:4
  # an indented comment does not end the directives
#SBATCH -t 1-00:00

module load cuda
srun python train.py
"""


def test_a_real_looking_script() -> None:
    found = parse_sbatch_script(TRAINING)
    assert found == SbatchDirectives(
        job_name="train llm",
        gpus=8,  # gpu:4 per node on two nodes
        gpu_type="h100",
        time_limit_s=86400,
        cpus_per_task=8,
        memory_gb=64,
        nodes=2,
    )


@pytest.mark.parametrize("text", ["0", "0G"])
def test_all_of_a_nodes_memory_is_set_aside(text: str) -> None:
    """sbatch reads --mem=0 as all of each node's memory; a shared factory gives what the
    submission asks for, and says so (the rule changed from refusing it, issue 18)."""
    found = parse_sbatch_script(f"#SBATCH --mem=8G\n#SBATCH --mem={text}\n")
    assert found.memory_gb is None
    assert found.notes == (f"line 2: --mem={text} set aside: all of a node's memory is not given "
                           "on a shared factory: the job gets the memory the submission asks "
                           "for (--mem), else the default",)  # fmt: skip


@pytest.mark.parametrize(
    ("line", "note"),
    [
        ("--output=%j.log", "line 3: --output=%j.log set aside: Fabriek keeps the job's output"),
        ("-o out.txt", "line 3: -o out.txt set aside: Fabriek keeps the job's output"),
        ("--error=%j.err", "line 3: --error=%j.err set aside: Fabriek keeps the job's output"),
        ("-e err.txt", "line 3: -e err.txt set aside: Fabriek keeps the job's output"),
        ("--partition gpu", "line 3: --partition gpu set aside: Fabriek chooses the site"),
        ("-p gpu", "line 3: -p gpu set aside: Fabriek chooses the site and nodes"),
        ("--qos=high", "line 3: --qos=high set aside: Fabriek chooses the site and nodes"),
        ("--mail-type=END", "line 3: --mail-type=END set aside: Fabriek tells you itself"),
        ("--mail-user=", "line 3: --mail-user= set aside: Fabriek tells you itself"),
        ("--exclusive", "line 3: --exclusive set aside: Fabriek places a job by the GPUs"),
        ("--time-min=1:00:00", "line 3: --time-min=1:00:00 set aside: Fabriek gives the job"),
        ("-D .", "line 3: -D . set aside: the job starts in its working directory"),
        ("--export=ALL", "line 3: --export=ALL set aside: every job gets the environment"),
    ],
)
def test_what_fabriek_decides_itself_is_set_aside_with_a_note(line: str, note: str) -> None:
    """Set aside, not refused (the rule changed in issue 18: real multi-node scripts carry
    these lines, and their absence does not change what the program computes); the user
    is told the line, the directive and why."""
    found = parse_sbatch_script(f"#!/bin/bash\n\n#SBATCH {line}\n#SBATCH -t 5\necho hi\n")
    assert len(found.notes) == 1 and found.notes[0].startswith(note), found.notes
    assert found.time_limit_s == 300  # the lines after it are read as before
    if "output" in note:
        assert "`fabriek logs JOB`" in found.notes[0]


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        ("--ntasks-per-gpu=4", "line 3: --ntasks-per-gpu=4: Fabriek does not honour"),
        (
            "--gpus-per-task=1",
            "line 3: --gpus-per-task=1: not supported: Fabriek gives GPUs per node",
        ),
        ("--array=0-9", "line 3: --array=0-9: Fabriek runs one job per submission"),
        ("-a 1-3", "line 3: -a 1-3: Fabriek runs one job per submission"),
        ("--dependency=afterok:12", "line 3: --dependency=afterok:12: Fabriek starts a job"),
        ("-w node1", "line 3: -w node1: Fabriek chooses the nodes, and a script tied"),
        ("--nodelist=gpu[1-2]", "line 3: --nodelist=gpu[1-2]: Fabriek chooses the nodes"),
        ("--export=NONE", "line 3: --export=NONE: the job gets your environment"),
        ("--chdir=work", "line 3: --chdir=work: write an absolute path"),
    ],
)
def test_directives_that_would_change_the_run_are_refused_not_ignored(
    line: str, detail: str
) -> None:
    """Never ignored: the user learns the line, the directive and what to do instead."""
    with pytest.raises(InvalidInput) as caught:
        parse_sbatch_script(f"#!/bin/bash\n\n#SBATCH {line}\necho hi\n")
    assert caught.value.detail.startswith(detail), caught.value.detail
    assert caught.value.problems[0].field == "script"
    if "does not honour" in detail:
        assert "it honours --job-name (-J), --time (-t)" in caught.value.detail


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("--gres=gpu:2", SbatchDirectives(gpus=2)),
        ("--gres=gpu", SbatchDirectives(gpus=1)),
        ("--gres=gpu:a100", SbatchDirectives(gpus=1, gpu_type="a100")),
        ("--gres=gpu:H100:4,nvme:1", SbatchDirectives(gpus=4, gpu_type="h100")),
        ("--gpus=3", SbatchDirectives(gpus=3)),
        ("--gpus=l40s:2", SbatchDirectives(gpus=2, gpu_type="l40s")),
        ("-G 2", SbatchDirectives(gpus=2)),
        ("-G2", SbatchDirectives(gpus=2)),
        ("--gpus 2", SbatchDirectives(gpus=2)),
        ("--gpus-per-node=2 --nodes=3", SbatchDirectives(gpus=6, nodes=3)),
        ("-J x -t 10", SbatchDirectives(job_name="x", time_limit_s=600)),
        ("--time 1:00:00", SbatchDirectives(time_limit_s=3600)),
        ("-t5", SbatchDirectives(time_limit_s=300)),
        ("--cpus-per-task 4", SbatchDirectives(cpus_per_task=4)),
        ("--mem=8000", SbatchDirectives(memory_gb=8)),
        ("--time=10 --time=20", SbatchDirectives(time_limit_s=1200)),  # the later one wins
        ("--job-name=run#1", SbatchDirectives(job_name="run")),  # sbatch: '#' starts a comment
        (r"--job-name=run\#1", SbatchDirectives(job_name="run#1")),
    ],
)
def test_one_directive(line: str, expected: SbatchDirectives) -> None:
    assert parse_sbatch_script(f"#!/bin/bash\n#SBATCH {line}\necho hi\n") == expected


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        ("#SBATCH --gres=gpu:x:abc", "line 3: --gres=gpu:x:abc: GPU count must be a whole number"),
        ("#SBATCH --gres=gpu:abc", "line 3: --gres=gpu:abc: GPU count must be a whole number"),
        ("#SBATCH --time=soon", "line 3: --time=soon: 'soon' is not a duration"),
        ("#SBATCH -t soon", "line 3: -t soon: 'soon' is not a duration"),
        ("#SBATCH", "line 3: #SBATCH: the directive names no option"),
        ("#SBATCH   # only a comment", "line 3: #SBATCH: the directive names no option"),
        ("#SBATCH --time", "line 3: --time: --time needs a value"),
        ("#SBATCH --mem=lots", "line 3: --mem=lots: 'lots' is not an amount of memory"),
        ("#SBATCH -N 2-4", "line 3: -N 2-4: a node range (min-max) is not supported"),
        ("#SBATCH --nodes=0", "line 3: --nodes=0: the node count must be at least 1"),
        ("#SBATCH -c many", "line 3: -c many: the CPU count must be a whole number"),
        ("#SBATCH --job-name=", "line 3: --job-name=: the job name is empty"),
        ("#SBATCH train.py", "line 3: train.py: expected an option"),
        ("#SBATCH -Z 1", "line 3: -Z: -Z is not an sbatch option"),
        ("#SBATCH --gpus-per-task=1", "line 3: --gpus-per-task=1: not supported"),
        ("#SBATCH -J 'open", "line 3: -J 'open: the quote ' is never closed"),
        ("#SBATCH --gres=gpu:1,gpu:2", "line 3: --gres=gpu:1,gpu:2: name the GPUs once"),
    ],
)
def test_unreadable_directives_name_line_and_directive(line: str, detail: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_sbatch_script(f"#!/bin/bash\n\n{line}\necho hi\n")
    assert caught.value.detail.startswith(detail)
    assert caught.value.problems[0].field == "script"


def test_directives_after_the_first_command_are_ignored() -> None:
    script = "#!/bin/bash\n#SBATCH -t 10\necho start\n#SBATCH --time=garbage\n#SBATCH -G 8\n"
    assert parse_sbatch_script(script) == SbatchDirectives(time_limit_s=600)


header_lines = st.lists(
    st.sampled_from(
        ["#SBATCH -t 10", "#SBATCH --gres=gpu:2", "#SBATCH -J a", "# note", "", "#SBATCH -N 1"]
    ),
    max_size=6,
)


@given(
    header=header_lines, command=st.sampled_from(["echo", "srun x", "  python y"]), tail=st.text()
)
def test_anything_after_the_first_command_changes_nothing(
    header: list[str], command: str, tail: str
) -> None:
    top = "\n".join(["#!/bin/bash", *header, command])
    assert parse_sbatch_script(f"{top}\n#SBATCH {tail}") == parse_sbatch_script(top)


@given(st.text(max_size=200))
def test_script_parser_raises_only_invalid_input(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        parse_sbatch_script(text)


@given(st.lists(st.text(max_size=30), max_size=5))
def test_directive_lines_of_any_text_raise_only_invalid_input(lines: list[str]) -> None:
    with contextlib.suppress(InvalidInput):
        parse_sbatch_script("\n".join(f"#SBATCH {line}" for line in lines))


options = st.sampled_from(
    [
        ("--time", "1:00:00"),
        ("--gres", "gpu:h100:2"),
        ("--gpus", "3"),
        ("--mem", "16G"),
        ("--cpus-per-task", "4"),
        ("--nodes", "2"),
        ("--job-name", "x"),
    ]
)


@given(st.lists(options, max_size=6))
def test_option_equals_value_and_option_blank_value_mean_the_same(
    chosen: list[tuple[str, str]],
) -> None:
    joined = "".join(f"#SBATCH {o}={v}\n" for o, v in chosen)
    spaced = "".join(f"#SBATCH {o} {v}\n" for o, v in chosen)
    one_line = "#SBATCH " + " ".join(f"{o} {v}" for o, v in chosen) + "\n" if chosen else ""
    a, b, c = (parse_sbatch_script(s) for s in (joined, spaced, one_line))
    assert (a.gpus, a.time_limit_s, a.memory_gb, a.nodes) == (
        b.gpus,
        b.time_limit_s,
        b.memory_gb,
        b.nodes,
    )
    assert (a.job_name, a.cpus_per_task) == (b.job_name, b.cpus_per_task)
    assert b == c


def test_explicit_values_win_over_directives() -> None:
    spec = spec_from_script(TRAINING, gpus=1, time_limit_s=60, name="quick", nodes=1)
    assert (spec.name, spec.gpus, spec.time_limit_s, spec.nodes) == ("quick", 1, 60, 1)
    assert (spec.gpu_type, spec.cpus, spec.memory_gb) == ("h100", 8, 64)  # from the script
    assert spec.script == TRAINING and spec.command is None


def test_explicit_zero_gpus_is_a_value_not_a_gap() -> None:
    assert spec_from_script(TRAINING, gpus=0).gpus == 0


def test_without_directives_the_job_defaults_apply() -> None:
    spec = spec_from_script("#!/bin/bash\necho hi\n")
    assert (spec.name, spec.gpus, spec.nodes, spec.cpus, spec.time_limit_s) == (
        "script",
        0,
        1,
        1,
        3600,
    )


@given(
    explicit=st.one_of(st.none(), st.integers(1, 10_000)),
    in_script=st.one_of(st.none(), st.integers(1, 10_000)),
)
def test_the_explicit_time_wins_whenever_given(explicit: int | None, in_script: int | None) -> None:
    script = "#!/bin/bash\n" + (f"#SBATCH --time={in_script}s\n" if in_script else "") + "true\n"
    spec = spec_from_script(script, time_limit_s=explicit)
    assert spec.time_limit_s == (explicit or in_script or 3600)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"gpus": -1}, "gpus"),
        ({"cpus": 0}, "cpus"),
        ({"time_limit_s": 0}, "time"),
        ({"memory_gb": 0}, "memory_gb"),
        ({"nodes": 0}, "nodes"),
        ({"name": " "}, "name"),
    ],
)
def test_bad_explicit_values_are_refused(kwargs: dict[str, int | str], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        spec_from_script("#!/bin/bash\ntrue\n", **kwargs)  # type: ignore[arg-type]
    assert caught.value.problems[0].field == field


def test_an_empty_script_is_refused() -> None:
    with pytest.raises(InvalidInput, match="script: the script is empty"):
        spec_from_script("  \n")


# --- Token splitting: the shell's lexer (shlex), and where sbatch's own splitter differs ------


@pytest.mark.parametrize(
    ("line", "name"),
    [
        # Where shlex and sbatch agree: quotes group, either kind, and may join a token.
        ('--job-name="train llm"', "train llm"),
        ("--job-name='train llm'", "train llm"),
        ('--job-name=a"b c"d', "ab cd"),
        (r"--job-name=a\ b", "a b"),
        ('--job-name="run#1"', "run#1"),  # a quoted '#' starts no comment
        ('--job-name="say \\"hi\\""', 'say "hi"'),  # \" in double quotes is a quote
        # Where they differ, the shell's rules hold (sbatch would drop these backslashes).
        (r'--job-name="a\b"', r"a\b"),
        (r"--job-name='a\"b'", r"a\"b"),
    ],
)
def test_quotes_and_backslashes_as_the_shell_reads_them(line: str, name: str) -> None:
    assert parse_sbatch_script(f"#SBATCH {line}\n").job_name == name


def test_a_backslash_that_ends_the_directive_is_refused_not_dropped() -> None:
    """sbatch drops a final backslash silently; Fabriek never ignores part of a directive."""
    with pytest.raises(InvalidInput) as caught:
        parse_sbatch_script("#SBATCH --job-name=a\\\n")
    assert caught.value.detail == (
        "line 1: --job-name=a\\: the backslash at the end of the line escapes nothing"
    )


def test_an_unclosed_double_quote_is_named() -> None:
    with pytest.raises(InvalidInput, match='the quote " is never closed'):
        parse_sbatch_script('#SBATCH -J "open\n')
