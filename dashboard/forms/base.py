"""Shared form plumbing for tenant-owned objects."""

from __future__ import annotations

from typing import Any

from django import forms

from tenancy.models import Tenant


class TenantModelForm(forms.ModelForm):
    """A ModelForm for an object owned by a tenant.

    The tenant is not a form field, so Django would skip the (tenant, name) unique
    constraints when validating and a duplicate would end in an IntegrityError. Keeping
    the tenant in the validation makes it a form error instead; forms that want it on the
    name field check the name themselves (clean_name) before this fallback runs.
    """

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.instance.tenant = tenant

    def _get_validation_exclusions(self) -> set[str]:
        exclusions = super()._get_validation_exclusions()  # type: ignore[misc]  # private in stubs
        exclusions.discard("tenant")
        return exclusions
