"""The Kubernetes manifests and the Grafana dashboard name only what the service has: its
flags, settings, ports, probes and metrics."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import generate_latest

from smarttrade import metrics
from smarttrade.config import add_serve_flags, from_environment

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONFIG = Path(__file__).resolve().parents[2] / "service" / "smarttrade" / "config.py"


def manifests() -> dict[str, dict[str, Any]]:
    documents = yaml.safe_load_all((DEPLOY / "kubernetes" / "smarttrade.yaml").read_text())
    return {document["kind"]: document for document in documents}


def container() -> dict[str, Any]:
    spec = manifests()["Deployment"]["spec"]["template"]["spec"]
    [only] = spec["containers"]
    return dict(only)


def test_the_arguments_are_flags_of_smarttrade_serve() -> None:
    parser = argparse.ArgumentParser()
    add_serve_flags(parser)
    parsed = parser.parse_args(container()["args"])
    assert parsed.metrics_listen == "0.0.0.0:9100"
    assert parsed.log_format == "json"


def test_every_variable_is_a_setting_the_service_reads() -> None:
    names = {variable["name"] for variable in container()["env"]}
    read = set(re.findall(r'"(SMARTTRADE_[A-Z_]+)"', CONFIG.read_text()))
    assert names <= read
    plain = {v["name"]: v["value"] for v in container()["env"] if "value" in v}
    settings = from_environment(plain)
    assert settings.lease_seconds == 5  # replicas: one acts, the other stands by
    assert settings.listen == "0.0.0.0:50051"


def test_the_probes_and_ports_are_the_services() -> None:
    spec = container()
    ports = {port["name"]: port["containerPort"] for port in spec["ports"]}
    env = {v["name"]: v.get("value") for v in spec["env"]}
    assert env["SMARTTRADE_LISTEN"].endswith(f":{ports['grpc']}")
    assert spec["args"][spec["args"].index("--metrics-listen") + 1].endswith(f":{ports['metrics']}")
    # Ready by gRPC health (a standby too: it forwards), alive while it listens.
    assert spec["readinessProbe"]["grpc"]["port"] == ports["grpc"]
    assert spec["livenessProbe"]["tcpSocket"]["port"] == "grpc"
    assert manifests()["Service"]["spec"]["clusterIP"] == "None"
    annotations = manifests()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]
    service_ports = {p["name"]: p["targetPort"] for p in manifests()["Service"]["spec"]["ports"]}
    assert set(service_ports.values()) <= set(ports)


def test_the_disruption_budget_keeps_one_of_at_least_two_replicas() -> None:
    deployment, budget = manifests()["Deployment"], manifests()["PodDisruptionBudget"]
    assert deployment["spec"]["replicas"] >= 2
    assert budget["spec"]["minAvailable"] == 1
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_secrets_read_are_in_the_example_secret() -> None:
    keys = {
        v["valueFrom"]["secretKeyRef"]["key"]
        for v in container()["env"]
        if "secretKeyRef" in v.get("valueFrom", {})
    }
    example = yaml.safe_load((DEPLOY / "kubernetes" / "secret.example.yaml").read_text())
    assert keys == set(example["stringData"])


def test_the_dashboard_queries_only_metrics_the_service_exports() -> None:
    exported = metrics.Exported("replica", "0")
    exported.shards_held(lambda: 6)
    exported.lease_taken()
    exported.rpc("GetSmartTrade", "OK", 0.001)  # series labelled by what happened exist
    exported.venue_error("rejected")  # once it happened
    text = generate_latest(exported.registry).decode()
    names = set(re.findall(r"^(smarttrade_[a-z_]+)", text, re.MULTILINE))
    dashboard = json.loads((DEPLOY / "grafana" / "smarttrade.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"smarttrade_[a-z_]+", target["expr"])
    }
    assert queried
    assert queried <= names
