"""Argo Workflows (Hera): WorkflowTemplates over components/ steps; render, run, submit."""
