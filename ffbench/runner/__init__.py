"""Where cells run: processes, the fork server, the local pool, Slurm (submitit)."""
