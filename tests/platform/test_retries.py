"""Every Celery task that waits out an outage does it one way (foundation.retries); only the two
tasks whose retries are what they do retry by their own rules."""

from __future__ import annotations

import inspect

from django.db import OperationalError

from foundation.retries import retried_on_outages
from koe.celery import app

CORE = ("foundation", "tenancy", "calls", "billing", "audit", "events", "retention")
PRODUCT = tuple(f"{app_name}." for app_name in (*CORE, "tools", "agents"))
# Their retries are the product: a tool that timed out runs again, an event follows its
# published schedule.
OWN_RULES = {"tools.tasks.run_tool_invocation", "events.tasks.deliver_event"}
POLICY = {key: value for key, value in retried_on_outages().items() if key != "autoretry_for"}


def product_tasks() -> dict[str, object]:
    app.loader.import_default_modules()
    return {name: task for name, task in app.tasks.items() if name.startswith(PRODUCT)}


def test_the_registry_holds_the_product_tasks() -> None:
    names = set(product_tasks())
    assert {"billing.tasks.settle_call_task", "audit.tasks.run_export_task"} <= names
    assert names >= OWN_RULES


def test_tasks_that_wait_out_outages_use_the_one_policy() -> None:
    retrying = {
        name: task for name, task in product_tasks().items() if getattr(task, "autoretry_for", ())
    }
    assert "billing.tasks.send_budget_notices_task" in retrying
    assert "audit.tasks.run_export_task" in retrying
    for name, task in retrying.items():
        options = {key: getattr(task, key) for key in POLICY}
        assert options == POLICY, name
        assert OperationalError in task.autoretry_for, name  # type: ignore[attr-defined]


def test_only_the_tasks_with_rules_of_their_own_retry_by_hand() -> None:
    by_hand = {
        name
        for name, task in product_tasks().items()
        if ".retry(" in inspect.getsource(task.run)  # type: ignore[attr-defined]
    }
    assert by_hand == OWN_RULES
