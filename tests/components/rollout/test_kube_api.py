"""The Kubernetes client's pieces that stand alone: the merge patch it computes (checked against
the fake server's RFC 7386 application of it), the kinds by kubectl's names, its errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.rollout.kube_api import (
    INFERENCESERVICE,
    RAYSERVICE,
    KubeApi,
    KubeError,
    kind_named,
    merge_diff,
)
from components.settings import packaged_schemas_dir
from testing.kube_api_server import FakeKubeApi, merge_patch

# JSON without null: a merge patch cannot set a null (null deletes).
json_values = st.recursive(
    st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text("abc", min_size=1, max_size=2), inner, max_size=3)
    ),
    max_leaves=12,
)
documents = st.dictionaries(st.text("abcd", min_size=1, max_size=2), json_values, max_size=4)


@given(documents, documents)
def test_the_merge_diff_turns_one_document_into_the_other(
    current: dict[str, Any], wanted: dict[str, Any]
) -> None:
    assert merge_patch(current, merge_diff(current, wanted)) == wanted


def test_kinds_by_kubectl_names() -> None:
    assert kind_named("rayservice") == kind_named("rayservices.ray.io") == RAYSERVICE
    assert kind_named("isvc") == kind_named("InferenceService") == INFERENCESERVICE
    with pytest.raises(KubeError, match="unknown resource type 'pods'"):
        kind_named("pods")


def test_errors_say_what_and_where(tmp_path: Path) -> None:
    with pytest.raises(KubeError, match="no usable Kubernetes configuration in"):
        KubeApi(tmp_path / "missing.kubeconfig")
    with FakeKubeApi(packaged_schemas_dir()) as fake:
        config = fake.write_kubeconfig(tmp_path / "kubeconfig")
        api = KubeApi(config)
        assert api.get(RAYSERVICE, "nothing", "ai-ml") is None
        wrong = tmp_path / "wrong.kubeconfig"
        wrong.write_text(config.read_text().replace("llmw-test-token", "stolen"))
        with pytest.raises(KubeError, match="get rayservices/x in ai-ml: 401 Unauthorized") as exc:
            KubeApi(wrong).get(RAYSERVICE, "x", "ai-ml")
        assert exc.value.code == 401
        with pytest.raises(KubeError, match="does not exist") as missing:
            api.update(RAYSERVICE, "x", "ai-ml", lambda obj: obj)
        assert missing.value.code == 404
