"""Engines run jobs: `local` as processes on this machine, `slurm` on a Slurm cluster."""
