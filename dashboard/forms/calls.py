"""The call list's filter form: the calls app's filter, with selects of the tenant's agents
and tools and the page's layout (which filters fold away under "More filters")."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django import forms

from agents.models import Agent
from calls.filters import CallFilter, PublicIdField, with_blank
from tenancy.models import Tenant
from tenancy.scoping import for_tenant
from tools.models import ToolDefinition

# Shown under "More filters"; the others are always in view.
MORE_FILTERS = (
    "min_duration",
    "max_duration",
    "end_reason",
    "consent",
    "tool",
    "min_cost",
    "max_cost",
    "legal_hold",
)


class ObjectIdField(forms.ChoiceField):
    """A select of the tenant's objects by public id, whose choices are read only when the
    form is shown. Any well-formed id is accepted, as by the filter's own field."""

    default_validators = PublicIdField.default_validators

    def valid_value(self, value: Any) -> bool:
        return True


class CallFilterForm(CallFilter):
    """The filters as the call list shows them."""

    agent = ObjectIdField(label="Agent", required=False)
    tool = ObjectIdField(label="Tool used", required=False)

    def __init__(
        self, data: Mapping[str, Any] | None = None, *, tenant: Tenant, **kwargs: Any
    ) -> None:
        super().__init__(data, tenant=tenant, **kwargs)
        agent_field = self.fields["agent"]
        tool_field = self.fields["tool"]
        assert isinstance(agent_field, ObjectIdField) and isinstance(tool_field, ObjectIdField)
        agent_field.choices = self._lazy_choices("All agents", Agent)
        tool_field.choices = self._lazy_choices("Any tool or none", ToolDefinition)

    def _lazy_choices(
        self, blank: str, model: type[Agent] | type[ToolDefinition]
    ) -> Callable[[], list[tuple[str, str]]]:
        # Read when the select is drawn, never for an export that only filters.
        def choices() -> list[tuple[str, str]]:
            objects = for_tenant(model, self.tenant).order_by("name")
            return with_blank(blank, list(objects.values_list("public_id", "name")))

        return choices

    @property
    def main_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name not in MORE_FILTERS]

    @property
    def more_fields(self) -> list[forms.BoundField]:
        """The filters the list folds away until one of them is used."""
        return [self[name] for name in MORE_FILTERS]

    @property
    def uses_more_fields(self) -> bool:
        return self.is_bound and any(
            str(self.data.get(name) or "").strip() for name in MORE_FILTERS
        )
