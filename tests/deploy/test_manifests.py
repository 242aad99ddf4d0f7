"""deploy/: the Kubernetes manifests against Kubernetes' own schemas, the HAProxy config
by HAProxy itself, and the numbers that must agree between them and Koe's settings (a
grace period shorter than the drain would SIGKILL the calls the drain was keeping)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.live import HAPROXY_CFG, ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30"  # the oldest release still in support when this was written
LONGEST_CALL_SECONDS = 3600  # Agent.max_call_duration_seconds' upper bound


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append((f"{path.name}:{document['kind']}", document))
    return found


def by_kind(kind: str, name: str) -> dict[str, Any]:
    return next(d for _, d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name)


def config() -> dict[str, str]:
    return dict(by_kind("ConfigMap", "koe-config")["data"])


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    return dict(deployment["spec"]["template"]["spec"]["containers"][0])


@pytest.mark.parametrize(("name", "document"), manifests(), ids=[n for n, _ in manifests()])
def test_each_manifest_is_valid_kubernetes(name: str, document: dict[str, Any]) -> None:
    # strict: a misspelt field is an error, not silently dropped by the API server.
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_is_caught() -> None:
    """The check above can fail: a field in the wrong place is refused."""
    broken = by_kind("Deployment", "koe-web")
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 330
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_web_pods_drain_before_the_kubelet_kills_them() -> None:
    web = by_kind("Deployment", "koe-web")
    spec, web_container = web["spec"]["template"]["spec"], container(web)
    pause = int(web_container["lifecycle"]["preStop"]["exec"]["command"][-1])
    drain = float(config()["KOE_DRAIN_SECONDS"])
    assert spec["terminationGracePeriodSeconds"] > pause + drain
    assert web_container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web_container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # Capacity never dips in a rollout: a new pod is ready before an old one drains.
    assert web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_the_autoscaler_reads_a_metric_koe_exports_below_the_admission_limit() -> None:
    from django.test import Client

    hpa = by_kind("HorizontalPodAutoscaler", "koe-web")
    metric = hpa["spec"]["metrics"][0]["pods"]
    exported = Client().get("/metrics").content.decode()
    assert re.search(rf"^{metric['metric']['name']} ", exported, re.MULTILINE)
    # Pods are added before any of them refuses a call.
    target = float(metric["target"]["averageValue"])
    assert 0 < target < int(config()["KOE_MAX_CALLS_PER_PROCESS"])


def test_compose_gives_web_its_drain_and_puts_haproxy_in_front() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    web, lb = compose["services"]["web"], compose["services"]["lb"]
    grace = re.fullmatch(r"\$\{KOE_STOP_GRACE_PERIOD:-(\d+)s\}", web["stop_grace_period"])
    drain = re.fullmatch(r"\$\{KOE_DRAIN_SECONDS:-(\d+)\}", web["environment"]["KOE_DRAIN_SECONDS"])
    assert grace and drain and int(grace.group(1)) > int(drain.group(1))
    assert "ports" not in web, "web is reached through the lb, so it can be scaled"
    assert "./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]


def test_compose_turn_relay_is_optional_and_shares_its_secret_with_koe() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    turn, web = compose["services"]["turn"], compose["services"]["web"]
    assert turn["profiles"] == ["turn"]  # only with --profile turn
    assert "--use-auth-secret" in turn["command"]
    assert "--static-auth-secret=${KOE_TURN_SECRET:?set KOE_TURN_SECRET in .env}" in turn["command"]
    assert web["environment"]["KOE_TURN_SECRET"] == "${KOE_TURN_SECRET:-}"
    assert "3478:3478/udp" in turn["ports"]


def test_haproxy_keeps_a_call_for_longer_than_the_longest_call() -> None:
    text = HAPROXY_CFG.read_text()
    tunnel = re.search(r"^\s*timeout tunnel (\d+)s$", text, re.MULTILINE)
    assert tunnel and int(tunnel.group(1)) > LONGEST_CALL_SECONDS
    assert re.search(r"http-check send meth GET uri /readyz$", text, re.MULTILINE)


@pytest.mark.haproxy
def test_haproxy_accepts_its_config(tmp_path: Path) -> None:
    haproxy = shutil.which("haproxy")
    assert haproxy is not None
    checked = subprocess.run(
        [haproxy, "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
