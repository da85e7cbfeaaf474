"""The steps of llm-workflows as plain typed Python, grouped by job, and what they share.

``ingest/``, ``inference/`` and ``cluster/`` hold the jobs' logic; ``storage/``,
``orchestration/``, ``settings`` and ``registry`` (each job defined once) are what the engine
rooms share. Nothing here imports kfp, hera or another room; heavy libraries load inside the
functions that need them.
"""
