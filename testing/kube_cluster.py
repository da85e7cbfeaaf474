"""A fake cluster for the kubernetes engine's tests: the CRD-validating API server
(testing/kube_api_server.py) and what answers on its routes (testing/serve_routes.py), coupled,
so that a route answers as the model version the cluster runs there, and settings that point the
rollout at both."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.settings import Settings, packaged_schemas_dir
from testing.kube_api_server import FakeKubeApi
from testing.serve_routes import ServedRoutes


@dataclass
class FakeCluster:
    api: FakeKubeApi
    routes: ServedRoutes
    kubeconfig: Path
    folder: Path

    def settings(self, **overrides: Any) -> Settings:
        """Settings on this cluster, a model store in the folder, quick polling."""
        values: dict[str, Any] = {
            "kubeconfig": self.kubeconfig,
            "model_store_uri": str(self.folder / "models"),
            "rollout_serve_url": self.routes.root_url,
            "rollout_kserve_url": self.routes.root_url + "/kserve/{name}",
            "kube_poll_interval_s": 0.05,
            "rollout_ready_timeout_s": 20.0,
            **overrides,
        }
        return Settings(**values)


@contextmanager
def fake_cluster(folder: Path, ready_delay_s: float = 0.3) -> Iterator[FakeCluster]:
    """Both servers on 127.0.0.1, stopped when the block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    with ServedRoutes() as routes, FakeKubeApi(packaged_schemas_dir(), ready_delay_s) as api:
        api.on_serving = lambda served: routes.serve(served.route_prefix, served.version, served.up)
        kubeconfig = api.write_kubeconfig(folder / "kubeconfig", namespace="ai-ml")
        yield FakeCluster(api, routes, kubeconfig, folder)
