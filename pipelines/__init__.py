"""Kubeflow Pipelines v2: thin components over the steps in ``components/``, their pipelines, and
the tools to compile, run locally and submit them. Only this room imports ``kfp``."""
