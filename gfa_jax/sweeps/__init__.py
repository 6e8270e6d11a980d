"""Sweeps across processes: sweep files, submitit executors (SLURM job arrays, local processes),
status and collection of a launched sweep. Entry point: ``python -m gfa_jax.launch``."""
