"""``mlperf-pilot sweep``: a matrix of run settings, each point one ``mlperf-pilot run``
job on an executor (local, Slurm), with the sweep's state kept beside its results.

grid (the sweep file -> validated points), assets (models and data prepared once),
job (one point's process), executors (where the jobs run), state (what each point did).
"""
