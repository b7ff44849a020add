"""How a job on a Slurm site picks and records its web app's port, and how the control plane
reads it back (engines/slurm_web.py): the batch-script lines run by a real bash against this
machine's real listening sockets, the parsers on what Slurm prints, and the sites file's
keys. The whole path through a real cluster is tests/slurm/test_slurm_web_apps.py."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.containers import ContainerRuntime, ContainerSupport
from fabriek.domain.errors import InvalidInput
from fabriek.domain.jobs import JobSpec
from fabriek.engines.base import EngineJob
from fabriek.engines.slurm_parse import parse_squeue_json
from fabriek.engines.slurm_sbatch import WebApp, build_script
from fabriek.engines.slurm_scontrol import parse_scontrol_oneliner
from fabriek.engines.slurm_web import (
    WebPorts,
    node_address_from_rest,
    node_address_from_scontrol,
    parse_port,
    recorded_port,
    web_file_name,
    web_port_lines,
)
from fabriek.services.jobs.engine_registry import load_sites_file

DATA = Path(__file__).parent / "slurm" / "data"


def run_lines(folder: Path, ports: WebPorts, job_id: int) -> subprocess.CompletedProcess[str]:
    """The script's web lines, then what the job would see, in a real bash."""
    script = "\n".join(
        [*web_port_lines("site a", folder, ports), 'echo "$FABRIEK_WEB_PORT $FABRIEK_WEB_HOST"']
    )
    env = {"PATH": os.environ["PATH"], "SLURM_JOB_ID": str(job_id)}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    """A socket listening on a port the kernel chose, as another job's app would."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held


def test_the_job_takes_a_free_port_of_the_range_and_records_it(tmp_path: Path) -> None:
    ports = WebPorts(40000, 40999, listen="0.0.0.0")
    done = run_lines(tmp_path, ports, job_id=1234)
    assert done.returncode == 0, done.stderr
    port, host = done.stdout.split()
    assert ports.holds(int(port)) and host == "0.0.0.0"
    record = tmp_path / web_file_name("site a", "1234")
    assert record.name == "site_a-1234.web"
    assert record.read_text() == f"{port}\n"
    assert record.stat().st_mode & 0o777 == 0o644  # no secret; the control plane reads it
    assert recorded_port(record, os.getuid(), ports) == int(port)


def test_a_port_another_app_listens_on_is_skipped(tmp_path: Path, listening: socket.socket) -> None:
    taken = listening.getsockname()[1]
    # A range of two ports whose first candidate for this job is the one taken.
    low = taken if taken < 65535 else taken - 1
    ports = WebPorts(low, low + 1)
    job_id = next(j for j in range(200) if (j * 97) % 2 == taken - low)
    done = run_lines(tmp_path, ports, job_id)
    assert done.returncode == 0, done.stderr
    port = int(done.stdout.split()[0])
    assert port != taken and ports.holds(port)


def test_a_node_without_a_free_port_fails_the_job_at_once_saying_why(
    tmp_path: Path, listening: socket.socket
) -> None:
    taken = listening.getsockname()[1]
    done = run_lines(tmp_path, WebPorts(taken, taken), job_id=7)
    assert done.returncode == 1
    assert f"no port free for the web app in {taken}-{taken}" in done.stderr
    assert not (tmp_path / web_file_name("site a", "7")).exists()


def test_two_jobs_starting_together_search_from_different_places(tmp_path: Path) -> None:
    ports = WebPorts(41000, 41999)
    first = run_lines(tmp_path, ports, job_id=500).stdout.split()[0]
    second = run_lines(tmp_path, ports, job_id=501).stdout.split()[0]
    assert first != second


def test_an_output_folder_with_odd_characters_is_written_to_as_named(tmp_path: Path) -> None:
    folder = tmp_path / "out $HOME 'x\""
    folder.mkdir()
    done = run_lines(folder, WebPorts(42000, 42999), job_id=9)
    assert done.returncode == 0, done.stderr
    assert (folder / web_file_name("site a", "9")).read_text() == done.stdout.split()[0] + "\n"


def test_a_web_job_in_a_podman_image_is_handed_its_port_and_address() -> None:
    job = EngineJob(5, JobSpec(name="app", command=("sh", "-c", "serve"), web_port=80,
                               container_image="registry.example/p/app:1"))  # fmt: skip
    web = WebApp("site a", PurePath("/shared/out"), WebPorts())
    script = build_script(job, ContainerSupport(ContainerRuntime.PODMAN), web)
    assert "--env FABRIEK_WEB_HOST --env FABRIEK_WEB_PORT" in script
    assert script.index("export FABRIEK_WEB_PORT") < script.index("podman run")
    plain = build_script(EngineJob(6, JobSpec(name="p", command=("true",))), None, web)
    assert "FABRIEK_WEB_PORT" not in plain  # a job without a web app gets no port


@given(st.integers(min_value=0, max_value=99999))
def test_a_recorded_port_counts_only_inside_the_sites_range(port: int) -> None:
    ports = WebPorts(20000, 29999)
    assert parse_port(f"{port}\n", ports) == (port if 20000 <= port <= 29999 else None)


@given(st.text(max_size=12))
def test_anything_but_one_number_is_no_port(text: str) -> None:
    if not text.strip().isdigit():
        assert parse_port(text, WebPorts()) is None


def test_a_port_file_that_is_a_link_or_not_the_jobs_users_is_not_trusted(tmp_path: Path) -> None:
    ports = WebPorts(20000, 29999)
    real = tmp_path / "real.web"
    real.write_text("20001\n")
    real.chmod(0o644)
    link = tmp_path / "link.web"
    link.symlink_to(real)
    assert recorded_port(real, os.getuid(), ports) == 20001
    assert recorded_port(link, os.getuid(), ports) is None
    assert recorded_port(real, os.getuid() + 1, ports) is None
    assert recorded_port(real, None, ports) is None
    real.chmod(0o646)
    assert recorded_port(real, os.getuid(), ports) is None


def test_the_batch_host_and_user_are_read_from_both_of_slurms_listings() -> None:
    from_json = parse_squeue_json((DATA / "squeue_22.05_active.json").read_text())
    from_text = parse_scontrol_oneliner((DATA / "scontrol_22.05_active.txt").read_text())
    running = [j for j in from_json if j.state == "RUNNING"]
    assert running and all(j.batch_host.startswith("capturen") for j in running)
    assert all(j.user_id == 0 for j in from_json)
    assert {j.handle: j.batch_host for j in from_text} == {
        j.handle: j.batch_host for j in from_json
    }
    pending = [j for j in from_json if j.state == "PENDING"]
    assert pending and all(j.batch_host == "" for j in pending)


def test_a_nodes_address_as_slurm_reaches_it() -> None:
    line = "NodeName=sitean1 Arch=x86_64 CoresPerSocket=1 NodeAddr=10.1.0.7 NodeHostName=n1"
    assert node_address_from_scontrol(line) == "10.1.0.7"
    assert node_address_from_scontrol("NodeName=x NodeAddr=(null)") is None
    assert node_address_from_scontrol("Node y not found") is None
    assert node_address_from_rest({"nodes": [{"name": "n1", "address": "10.1.0.8"}]}) == (
        "10.1.0.8"
    )
    assert node_address_from_rest({"nodes": []}) is None
    assert node_address_from_rest({"errors": ["x"]}) is None


def test_the_sites_file_sets_the_range_the_address_and_node_addresses(tmp_path: Path) -> None:
    path = tmp_path / "sites.toml"
    path.write_text(
        '[sites.delft]\nengine = "slurm"\nslurm_conf = "/etc/slurm/slurm.conf"\n'
        'web_ports = [21000, 21999]\nweb_listen = "10.1.0.0"\n'
        'node_addresses = { gpu001 = "10.1.0.1" }\n'
    )
    config = load_sites_file(path)["delft"]
    assert config.web() == WebPorts(21000, 21999, "10.1.0.0")
    assert config.node_addresses == {"gpu001": "10.1.0.1"}
    for bad in ("web_ports = [30000, 20000]", "web_ports = [80, 90]", "web_ports = [20000]",
                'web_listen = "0.0.0.0; rm -rf ~"'):  # fmt: skip
        path.write_text(f'[sites.delft]\nengine = "slurm"\nslurm_conf = "/x"\n{bad}\n')
        with pytest.raises(InvalidInput, match=r"sites\.delft"):
            load_sites_file(path)
