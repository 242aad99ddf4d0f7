"""Tenants, their members and roles, invitations, API keys and provider credentials."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any
from zoneinfo import available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from foundation.encryption import EncryptedTextField
from foundation.ids import public_id, random_token
from foundation.outbound import validate_url_for_saving
from tenancy.roles import Permission, Role, role_allows


def validate_time_zone(value: str) -> None:
    # A validator, not choices: the IANA list changes with tzdata, migrations must not.
    if value not in available_timezones():
        raise ValidationError(
            "%(value)s is not an IANA time zone (e.g. Europe/Paris).", params={"value": value}
        )


def new_tenant_id() -> str:
    return public_id("ten")


def new_credential_id() -> str:
    return public_id("cred")


def new_api_key_id() -> str:
    return public_id("key")


def hash_secret(secret: str) -> str:
    """Secrets we issue are 190+ bits of randomness: a plain SHA-256 is a safe digest."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Tenant(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=new_tenant_id, editable=False)
    name = models.CharField(max_length=120)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    max_concurrent_calls = models.PositiveIntegerField(
        default=10,
        validators=[MinValueValidator(1)],
        help_text="Calls beyond this number are refused until one ends.",
    )
    auditors_may_hold = models.BooleanField(
        default=False, help_text="Let auditors set and lift legal hold on calls."
    )
    requires_two_factor = models.BooleanField(
        default=False,
        help_text="Members must give a code from an authenticator app after their password "
        "before they can use this tenant's pages.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["tenant__name", "user__email"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "tenant"], name="membership_user_tenant_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} of {self.tenant.name}"

    def allows(self, permission: Permission) -> bool:
        if permission == Permission.HOLD and self.role == Role.AUDITOR:
            return self.tenant.auditors_may_hold
        return role_allows(self.role, permission)


class Invitation(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"Invitation of {self.email} to {self.tenant.name} as {self.role}"

    @classmethod
    def issue(cls, **fields: Any) -> tuple[Invitation, str]:
        """Create an invitation; returns it with its token, which is never stored."""
        token = secrets.token_urlsafe(32)
        fields.setdefault(
            "expires_at", timezone.now() + timedelta(days=settings.KOE_INVITATION_DAYS)
        )
        invitation = cls.objects.create(token_hash=hash_secret(token), **fields)
        return invitation, token

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.expires_at > timezone.now()


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A tenant's secret key for the REST API and the realtime endpoint.

    Only a SHA-256 digest is stored; the key itself is shown once, when created.
    """

    SECRET_PREFIX = "sk_"

    public_id = models.CharField(max_length=40, unique=True, default=new_api_key_id, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16, editable=False, help_text="Shown to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, tenant: Tenant, name: str, created_by: Any = None) -> tuple[ApiKey, str]:
        secret = cls.SECRET_PREFIX + random_token(40)
        key = cls.objects.create(
            tenant=tenant,
            name=name,
            prefix=secret[:11],
            key_hash=hash_secret(secret),
            created_by=created_by,
        )
        return key, secret

    @classmethod
    def authenticate(cls, secret: str) -> ApiKey | None:
        """The active key for a presented secret, or None; records when it was last used."""
        if not secret.startswith(cls.SECRET_PREFIX):
            return None
        key = (
            cls.objects.active()
            .select_related("tenant")
            .filter(key_hash=hash_secret(secret))
            .first()
        )
        if key is not None:
            key.touch()
        return key

    def touch(self) -> None:
        # At most one write a minute per key: authentication is on every API request.
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at > timedelta(minutes=1):
            ApiKey.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])


class Provider(models.TextChoices):
    LOCAL = "local", "Built-in (offline)"
    OPENAI = "openai", "OpenAI"
    AZURE = "azure", "Azure OpenAI"


class ProviderCredential(models.Model):
    """A tenant's own key for a hosted provider, encrypted at rest."""

    public_id = models.CharField(
        max_length=40, unique=True, default=new_credential_id, editable=False
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="credentials")
    name = models.CharField(max_length=80)
    provider = models.CharField(
        max_length=16, choices=[(Provider.OPENAI, "OpenAI"), (Provider.AZURE, "Azure OpenAI")]
    )
    api_key = EncryptedTextField()
    key_hint = models.CharField(max_length=8, editable=False, blank=True)
    azure_endpoint = models.URLField(
        blank=True,
        help_text="Azure only: https://<resource>.openai.azure.com",
        # Koe connects to it with the tenant's key: never to this machine or a private net.
        validators=[validate_url_for_saving],
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="credential_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_provider_display()}, …{self.key_hint})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.key_hint = self.api_key[-4:] if self.api_key else ""
        super().save(*args, **kwargs)
