"""Shared form plumbing for tenant-owned objects."""

from __future__ import annotations

from typing import Any

from django import forms

from tenancy.models import Tenant


class TenantModelForm(forms.ModelForm):
    """A ModelForm for an object owned by a tenant.

    The tenant is not a form field, so Django would skip the (tenant, name) unique
    constraints when validating; setting it on the instance first and keeping it in the
    validation lets duplicates show as a field error instead of an IntegrityError.
    """

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.instance.tenant = tenant

    def _get_validation_exclusions(self) -> set[str]:
        exclusions = super()._get_validation_exclusions()
        exclusions.discard("tenant")
        return exclusions
