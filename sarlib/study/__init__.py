"""Targets, their runs and how they execute (locally or as SLURM jobs), and the tables with paired intervals."""
