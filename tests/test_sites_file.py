"""The sites file binds sites to engines; a wrong one stops the start with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from fabriek.domain.errors import InvalidInput
from fabriek.services.jobs.engine_registry import load_sites_file


def sites(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sites.toml"
    path.write_text(text)
    return path


def test_every_engine_with_what_it_needs(tmp_path: Path) -> None:
    configs = load_sites_file(
        sites(
            tmp_path,
            '[sites.groningen]\nengine = "local"\nvirtual_gpus = 8\n'
            '[sites.delft]\nengine = "slurm"\nslurm_conf = "/etc/slurm/slurm.conf"\n'
            '[sites.eindhoven]\nengine = "slurmrestd"\nurl = "https://slurm.example:6820"\n'
            'jwt_key_file = "/etc/fabriek/eindhoven.key"\nlog_dir = "/shared/out"\n',
        )
    )
    assert configs["groningen"].virtual_gpus == 8
    assert configs["delft"].slurm_conf == "/etc/slurm/slurm.conf"
    rest = configs["eindhoven"]
    assert (rest.engine, rest.operator, rest.log_dir) == ("slurmrestd", "slurm", "/shared/out")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[sites.a]\nengine = "slurm"\n', "engine slurm needs slurm_conf"),
        ('[sites.a]\nengine = "slurmrestd"\nurl = "http://x"\n', "needs jwt_key_file"),
        ('[sites.a]\nengin = "local"\n', "sites.a.engin: unknown key"),
        (
            '[sites.a]\nvirtual_gpus = "8"\n',
            "sites.a.virtual_gpus: input should be a valid integer",
        ),
        ('[sites.a]\nengine = "k8s"\n', "'local', 'slurm', 'slurmrestd' or 'partner'"),
        ("[sites.a\n", "is not valid TOML"),
    ],
)
def test_a_wrong_file_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=r"sites\.toml") as wrong:
        load_sites_file(sites(tmp_path, text))
    assert message in str(wrong.value) and "\n" not in str(wrong.value)
