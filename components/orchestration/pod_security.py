"""How the project's pods run: as the images' non-root user, with the runtime's seccomp profile,
and containers without privilege escalation or Linux capabilities. The Argo WorkflowTemplates
(``workflows.common``) and the RayService (``components.rollout.rayservice``) both use it."""

from __future__ import annotations

from typing import Any

# The user the project's images run as (images/*.Containerfile: USER 10001), never root.
RUN_AS_UID = 10001


def pod_security_context() -> dict[str, Any]:
    """A pod's ``securityContext``."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_UID,
        "runAsGroup": RUN_AS_UID,
        "fsGroup": RUN_AS_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """A container's ``securityContext``."""
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
