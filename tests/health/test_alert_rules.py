"""The shipped alert rules load as YAML and name only metrics the engine exports."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import engine.platform.metrics  # noqa: F401 - registers the metrics

RULES = Path(__file__).resolve().parents[2] / "docs" / "alerts.yml"


def test_every_rule_names_metrics_that_exist() -> None:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} >= {
        "MamoruRunnersMissing", "MamoruQueueWaiting", "MamoruFailuresByCategory",
        "MamoruSiteBlocked", "MamoruAuditBroken", "MamoruBackupMissing",
    }
    exported = set()
    for metric in REGISTRY.collect():
        # A labelled metric has no samples until used: its family name is what counts.
        exported.add(metric.name + ("_total" if metric.type == "counter" else ""))
    for rule in rules:
        for name in re.findall(r"\bmamoru_\w+", rule["expr"]):
            assert name in exported, (rule["alert"], name)
        assert rule["annotations"]["summary"]
