"""The one way to reach a tenant's objects: every tenant-scoped query goes through here.

An object of another tenant is indistinguishable from one that does not exist: both
raise Http404, so ids cannot be probed across tenants.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.http import Http404

from tenancy.models import Tenant

ModelT = TypeVar("ModelT", bound=models.Model)


def for_tenant(
    model_or_queryset: type[ModelT] | models.QuerySet[ModelT], tenant: Tenant
) -> models.QuerySet[ModelT]:
    queryset = (
        model_or_queryset
        if isinstance(model_or_queryset, models.QuerySet)
        else model_or_queryset._default_manager.all()
    )
    return queryset.filter(tenant=tenant)


def get_for_tenant_or_404(
    model_or_queryset: type[ModelT] | models.QuerySet[ModelT], tenant: Tenant, **lookup: Any
) -> ModelT:
    queryset = for_tenant(model_or_queryset, tenant)
    try:
        return queryset.get(**lookup)
    except (ObjectDoesNotExist, ValueError) as error:
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.") from error
