"""Django admin for the platform operator: every tenant, member, key and credential."""

from __future__ import annotations

from django.contrib import admin

from tenancy.models import ApiKey, Invitation, Membership, ProviderCredential, Tenant


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "time_zone", "max_concurrent_calls", "created_at"]
    search_fields = ["name", "public_id"]
    readonly_fields = ["public_id", "created_at"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "tenant__name"]
    autocomplete_fields = ["user", "tenant"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "tenant", "role", "created_at", "expires_at", "accepted_at"]
    search_fields = ["email", "tenant__name"]
    exclude = ["token_hash"]
    readonly_fields = ["accepted_at", "accepted_by", "invited_by"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "tenant", "created_at", "last_used_at", "revoked_at"]
    search_fields = ["name", "prefix", "tenant__name"]
    # Keys are issued from the dashboard (where the secret is shown once); the admin can
    # only see and revoke them.
    readonly_fields = ["public_id", "tenant", "prefix", "created_by", "created_at", "last_used_at"]
    exclude = ["key_hash"]

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(admin.ModelAdmin):
    list_display = ["name", "provider", "tenant", "key_hint", "updated_at"]
    list_filter = ["provider"]
    search_fields = ["name", "tenant__name"]
    exclude = ["api_key"]
    readonly_fields = ["public_id", "key_hint"]

    def has_add_permission(self, request: object) -> bool:
        return False
