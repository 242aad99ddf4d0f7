"""Phone numbers (which agent answers each) and the carrier accounts that hold them.

Numbers are agents' business (editors change them, everyone may see them); carrier
accounts hold an auth token, so, like provider keys, only managers see or change them.
"""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, ProtectedError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_safe

from agents.telephony.api import VOICE_WEBHOOKS, carrier_webhook_url, voice_url
from agents.telephony.models import CarrierAccount, PhoneNumber
from dashboard.access import require, tenant_view
from dashboard.forms.telephony import CarrierAccountForm, PhoneNumberForm
from tenancy.models import Membership
from tenancy.roles import Permission
from tenancy.scoping import for_tenant, get_for_tenant_or_404

# --- phone numbers ---------------------------------------------------------------------------


def _number_or_404(membership: Membership, number_id: str) -> PhoneNumber:
    numbers = PhoneNumber.objects.select_related("carrier_account", "agent")
    return get_for_tenant_or_404(numbers, membership.tenant, public_id=number_id)


def _webhook_urls(number: PhoneNumber | None = None) -> dict[str, str]:
    """The webhook to paste at the carrier, by carrier: the number's own carrier's, or
    every carrier's (the list page shows them before any number exists: all numbers of a
    carrier share one, since the call names the number it is for)."""
    if number is not None and number.carrier_account_id:
        return {number.carrier_account.carrier: voice_url(number)}
    return {carrier: carrier_webhook_url(carrier) for carrier in VOICE_WEBHOOKS}


# The list only reads: a POST (an auditor's included) is answered 405, not with the page.
@require_safe
@tenant_view()
def phone_number_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    numbers = (
        for_tenant(PhoneNumber, membership.tenant)
        .select_related("carrier_account", "agent")
        .order_by("number")
    )
    has_accounts = for_tenant(CarrierAccount, membership.tenant).exists()
    return render(
        request,
        "dashboard/phone_numbers/list.html",
        {
            "nav": "phone_numbers",
            "numbers": numbers,
            "has_accounts": has_accounts,
            "webhook_urls": _webhook_urls(),
        },
    )


@tenant_view(Permission.EDIT)
def phone_number_create(request: HttpRequest, membership: Membership) -> HttpResponse:
    return _number_form_page(request, membership, PhoneNumber())


@tenant_view()
def phone_number_edit(request: HttpRequest, membership: Membership, number_id: str) -> HttpResponse:
    number = _number_or_404(membership, number_id)
    require(membership, Permission.EDIT)
    return _number_form_page(request, membership, number)


@tenant_view()
def phone_number_delete(
    request: HttpRequest, membership: Membership, number_id: str
) -> HttpResponse:
    """GET asks for confirmation; POST deletes (the number's past calls keep their records)."""
    number = _number_or_404(membership, number_id)
    require(membership, Permission.EDIT)
    if request.method == "POST":
        number.delete()
        messages.success(request, f"Phone number {number.number} deleted.")
        return redirect("dashboard:phone_number_list")
    return render(
        request,
        "dashboard/phone_numbers/confirm_delete.html",
        {"nav": "phone_numbers", "number": number},
    )


def _number_form_page(
    request: HttpRequest, membership: Membership, number: PhoneNumber
) -> HttpResponse:
    is_new = number.pk is None
    # The heading keeps the stored number while the form shows the edited values.
    stored_number = number.number
    form = PhoneNumberForm(
        request.POST if request.method == "POST" else None,
        instance=number,
        tenant=membership.tenant,
    )
    if form.is_valid():
        saved = form.save()
        verb = "added" if is_new else "saved"
        answered = f"answered by “{saved.agent.name}”" if saved.agent else "with no agent"
        messages.success(request, f"Phone number {saved.number} {verb}, {answered}.")
        return redirect("dashboard:phone_number_list")
    return render(
        request,
        "dashboard/phone_numbers/form.html",
        {
            "nav": "phone_numbers",
            "form": form,
            "number": None if is_new else number,
            "stored_number": stored_number,
            "has_accounts": for_tenant(CarrierAccount, membership.tenant).exists(),
            "webhook_urls": _webhook_urls(None if is_new else number),
        },
    )


# --- carrier accounts ------------------------------------------------------------------------


def _account_or_404(membership: Membership, account_id: str) -> CarrierAccount:
    return get_for_tenant_or_404(CarrierAccount, membership.tenant, public_id=account_id)


@tenant_view(Permission.MANAGE)
def carrier_account_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    accounts = (
        for_tenant(CarrierAccount, membership.tenant)
        .annotate(number_count=Count("phone_numbers"))
        .order_by("name")
    )
    return render(
        request,
        "dashboard/carrier_accounts/list.html",
        {"nav": "carrier_accounts", "accounts": accounts},
    )


@tenant_view(Permission.MANAGE)
def carrier_account_create(request: HttpRequest, membership: Membership) -> HttpResponse:
    return _account_form_page(request, membership, CarrierAccount())


@tenant_view()
def carrier_account_edit(
    request: HttpRequest, membership: Membership, account_id: str
) -> HttpResponse:
    account = _account_or_404(membership, account_id)
    require(membership, Permission.MANAGE)
    return _account_form_page(request, membership, account)


@tenant_view()
def carrier_account_delete(
    request: HttpRequest, membership: Membership, account_id: str
) -> HttpResponse:
    """GET asks for confirmation (listing the numbers that use the account); POST deletes,
    unless numbers still use it: the account is protected, and the page says which."""
    account = _account_or_404(membership, account_id)
    require(membership, Permission.MANAGE)
    if request.method == "POST":
        try:
            account.delete()
        except ProtectedError:
            # The page offers no Delete while numbers use the account, but one may have
            # been added since it was shown: show it again, now listing that number.
            messages.error(
                request,
                f"Carrier account “{account.name}” is still used by phone numbers: "
                "move them to another account or delete them first.",
            )
        else:
            messages.success(request, f"Carrier account “{account.name}” deleted.")
            return redirect("dashboard:carrier_account_list")
    numbers = account.phone_numbers.select_related("agent").order_by("number")
    return render(
        request,
        "dashboard/carrier_accounts/confirm_delete.html",
        {"nav": "carrier_accounts", "account": account, "numbers": numbers},
    )


def _account_form_page(
    request: HttpRequest, membership: Membership, account: CarrierAccount
) -> HttpResponse:
    is_new = account.pk is None
    # The page heading keeps the stored name even while an edited one has errors.
    stored_name = account.name
    form = CarrierAccountForm(
        request.POST if request.method == "POST" else None,
        instance=account,
        tenant=membership.tenant,
    )
    if form.is_valid():
        saved = form.save()
        verb = "added" if is_new else "saved"
        messages.success(
            request, f"Carrier account “{saved.name}” {verb}; its auth token is stored encrypted."
        )
        return redirect("dashboard:carrier_account_list")
    return render(
        request,
        "dashboard/carrier_accounts/form.html",
        {
            "nav": "carrier_accounts",
            "form": form,
            "account": None if is_new else account,
            "stored_name": stored_name,
        },
    )
