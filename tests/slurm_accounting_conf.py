"""Slurm's accounting for the test clusters: the slurm.conf lines with and without slurmdbd,
slurmdbd.conf, and the machine's MariaDB server where each cluster keeps its own database
(see `tests.slurm_harness.SlurmCluster(accounting=True)`; docs/sites.md quotes these lines)."""

from __future__ import annotations

import subprocess

# The machine's MariaDB server, where every accounting cluster keeps its own database.
MARIADB_HOST = "127.0.0.1"
MARIADB_PORT = 3306
MARIADB_USER = "root"
# How slurmd gathers a job's resource use (jobacct_gather/linux reads /proc).
JOB_ACCT_GATHER = "jobacct_gather/linux"

NO_ACCOUNTING = """\
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
"""

# With slurmdbd: Slurm itself enforces associations, QOS and limits (GrpTRESMins on
# gres/gpu), counts GPUs as a TRES, and never forgets usage (no decay, no reset), so that
# an account's GrpTRESMins compares against everything it ever used.
ACCOUNTING = """\
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={dbd_port}
AccountingStorageEnforce=associations,limits,qos,safe
AccountingStorageTRES=gres/gpu
PriorityType=priority/multifactor
PriorityDecayHalfLife=0
PriorityUsageResetPeriod=NONE
JobAcctGatherType={gather}
JobAcctGatherFrequency=30
"""

# slurmdbd.conf: slurmdbd reads it from slurm.conf's folder (SLURM_CONF), must own it and
# refuses it unless only its owner may read it (it would hold the database password).
SLURMDBD_CONF = """\
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={dbd_port}
SlurmUser=root
LogFile={root}/log/slurmdbd.log
PidFile={root}/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost={db_host}
StoragePort={db_port}
StorageUser={db_user}
StorageLoc={database}
"""


def mariadb(sql: str) -> subprocess.CompletedProcess[str]:
    """Run SQL on the machine's MariaDB server as its root user (no password)."""
    return subprocess.run(
        ["mariadb", "-h", MARIADB_HOST, "-P", str(MARIADB_PORT), "-u", MARIADB_USER, "-e", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
