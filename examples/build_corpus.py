"""Writes the PDF and DOCX documents of the sample corpus (examples/docs).

The Markdown, HTML and text documents are committed as written; these two binary formats are
generated here from the texts below, deterministically, and committed too. Run it from the
repository root: `.venv/bin/python examples/build_corpus.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from testing.documents import Sections, write_document  # noqa: E402

DOCS = REPO / "examples" / "docs"

KHELBEN: Sections = [
    (
        "The GPU that runs vLLM",
        "Khelben is the node that runs vLLM. It carries an AMD Strix Halo APU (gfx1151) with 64 GB "
        "of unified memory shared between the CPU and the GPU, and uses the ROCm stack. Kubernetes "
        "sees the GPU through the AMD device plugin as amd.com/gpu.\n\n"
        "vLLM is dedicated to this node and takes 0.95 of its GPU behind the /llm route of the "
        "unified Ray Serve endpoint. The 64 GB of unified memory is what lets the homelab serve "
        "large language models that would never fit on the 8 GB RTX 2070.",
    ),
    (
        "Placing work on khelben",
        "Both AMD nodes expose amd.com/gpu, so a resource request alone could land a pod on the "
        "wrong machine. Batch inference with vLLM is therefore placed with a node selector for "
        "khelben as well as a request for one amd.com/gpu, and it uses a ROCm build of vLLM.\n\n"
        "There is only one Strix Halo in the cluster. A rollout strategy that needs a second copy "
        "of the GPU while the first is still serving can never schedule, so model rollouts on "
        "khelben replace the running deployment in place.",
    ),
]

CONTROL_PLANE: Sections = [
    (
        "Talos Linux and Kubernetes",
        "The cluster runs Kubernetes v1.35 on Talos Linux v1.12, an immutable operating system "
        "managed entirely through an API. There is no SSH and no package manager on the nodes; "
        "configuration changes are applied by talosctl and versioned in Git.",
    ),
    (
        "The control plane",
        "Three small Intel machines form the highly available control plane: storm, bruenor and "
        "catti. Each runs etcd and the Kubernetes API server, and they share the virtual IP "
        "192.168.100.20 so clients keep working when one of them is down. Leader election in etcd "
        "is automatic, and Talos handles failover of the virtual IP.",
    ),
    (
        "Workers",
        "Four workers carry the GPUs: elminster, khelben, drizzt and danilo. Cilium is the network "
        "plugin; pods live in 10.42.0.0/16 and services in 10.43.0.0/16. Longhorn provides "
        "replicated block storage, NFS provides shared volumes and MinIO provides S3.",
    ),
]

KUBEFLOW: Sections = [
    (
        "Kubeflow Pipelines in the homelab",
        "Kubeflow Pipelines is where data scientists track experiments. Each pipeline is written "
        "in Python with the KFP SDK, compiled to an intermediate representation, and submitted to "
        "the cluster, where every run appears in the Kubeflow UI with its parameters, metrics and "
        "artifacts.",
    ),
    (
        "Caching, experiments and lineage",
        "KFP caches step outputs so an unchanged step is not recomputed, groups runs into "
        "experiments so they can be compared side by side, and records the lineage of every "
        "artifact. The document ingestion pipeline reports documents by outcome, chunks written "
        "and chunks per second as metrics, and a Markdown summary of each run.",
    ),
    (
        "Triggers",
        "Runs can be started from the UI, from the llmw command, from Argo Events sensors through "
        "the KFP REST API, or by publishing a request on the AI_PIPELINE stream of NATS.",
    ),
]

DRIZZT: Sections = [
    (
        "Drizzt and the embeddings service",
        "Drizzt is an AMD Ryzen 7 6800H machine whose integrated AMD Radeon 680M GPU (gfx1035) has "
        "12 GB of memory. It serves the BGE embeddings model at 0.8 of the GPU behind the "
        "/embeddings route, which the document ingestion pipeline can use instead of the local "
        "MiniLM model.",
    ),
    (
        "HSA_OVERRIDE_GFX_VERSION",
        "ROCm does not officially support gfx1035. Workloads on drizzt set the environment "
        "variable HSA_OVERRIDE_GFX_VERSION=10.3.0 so that the ROCm runtime treats the Radeon 680M "
        "as a supported RDNA2 GPU.\n\n"
        "vLLM does not support this GPU at all. The placement logic refuses any request to run "
        "vLLM on drizzt with a message that names the GPU, and sends embedding work here by "
        "default instead.",
    ),
]

ARGO: Sections = [
    (
        "Argo Workflows",
        "Argo Workflows runs the DAGs that need fan-out across nodes: document ingestion over "
        "many shards, batch inference spread over GPUs, and training workflows. Workflows are "
        "defined in Python with Hera and kept as WorkflowTemplates, so a run only supplies its "
        "parameters.",
    ),
    (
        "Argo Events",
        "Argo Events connects the outside world to workflows. An EventSource listens to NATS "
        "subjects, MinIO bucket notifications or a calendar; a Sensor matches events and starts a "
        "WorkflowTemplate run or a Kubeflow pipeline run through its REST API. A new file "
        "uploaded to the documents bucket can thus trigger ingestion automatically.",
    ),
    (
        "Reliability",
        "Argo Events' NATS source uses core NATS and delivers at most once, so a trigger sent "
        "while it is down is lost. Requests that must not be lost go through the pipeline bridge "
        "and the AI_PIPELINE JetStream stream instead.",
    ),
]

DOCUMENTS: dict[str, tuple[str, Sections]] = {
    "khelben-vllm.pdf": ("Khelben: Strix Halo and vLLM", KHELBEN),
    "control-plane-talos.pdf": ("Control plane and platform", CONTROL_PLANE),
    "kubeflow-pipelines.pdf": ("Kubeflow Pipelines", KUBEFLOW),
    "drizzt-bge-embeddings.docx": ("Drizzt: Radeon 680M and BGE embeddings", DRIZZT),
    "argo-workflows-events.docx": ("Argo Workflows and Argo Events", ARGO),
}


def main() -> None:
    for name, (title, sections) in DOCUMENTS.items():
        print(write_document(DOCS / name, title, sections))


if __name__ == "__main__":
    main()
