"""Dashboard URLs. Object ids in URLs are public ids; a foreign tenant's id answers 404."""

from django.urls import path

from dashboard.views import (
    accounts,
    agents,
    audit,
    batches,
    calls,
    console,
    credentials,
    demo,
    events,
    keys,
    members,
    recordings,
    retention,
    telephony,
    tenants,
    tools,
    usage,
)

app_name = "dashboard"

urlpatterns = [
    path("", accounts.home, name="home"),
    # the demo restaurant's site with the embedded widget (KOE_DEMO_PAGE)
    path("demo/", demo.demo, name="demo"),
    # accounts
    path("login/", accounts.LoginView.as_view(), name="login"),
    path("logout/", accounts.LogoutView.as_view(), name="logout"),
    path("signup/", accounts.signup, name="signup"),
    path("login/code/", accounts.login_code, name="login_code"),
    path("password-reset/", accounts.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password-reset/sent/",
        accounts.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "password-reset/done/",
        accounts.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        accounts.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("account/", accounts.account_security, name="account_security"),
    path("account/password/", accounts.PasswordChangeView.as_view(), name="password_change"),
    path("account/two-factor/", accounts.two_factor_setup, name="two_factor_setup"),
    path("account/two-factor/off/", accounts.two_factor_turn_off, name="two_factor_turn_off"),
    path(
        "account/two-factor/backup-codes/",
        accounts.backup_codes_renew,
        name="backup_codes_renew",
    ),
    # tenants
    path("tenants/new/", tenants.tenant_create, name="tenant_create"),
    path("tenants/<str:tenant_id>/switch/", tenants.tenant_switch, name="tenant_switch"),
    path("settings/", tenants.tenant_settings, name="tenant_settings"),
    path("settings/budget/", tenants.tenant_budget, name="tenant_budget"),
    # retention
    path("settings/retention/", retention.retention_settings, name="retention_settings"),
    path(
        "settings/retention/agents/<str:agent_id>/",
        retention.retention_agent,
        name="retention_agent",
    ),
    # outbound events
    path("settings/events/", events.events_endpoint, name="events_endpoint"),
    path(
        "settings/events/rotate-secret/",
        events.events_rotate_secret,
        name="events_rotate_secret",
    ),
    path("settings/events/test/", events.events_test, name="events_test"),
    path("events/", events.event_list, name="event_list"),
    path("events/<str:event_id>/", events.event_detail, name="event_detail"),
    # members and invitations
    path("members/", members.member_list, name="member_list"),
    path("members/invite/", members.member_invite, name="member_invite"),
    path("members/<int:membership_id>/role/", members.member_role, name="member_role"),
    path("members/<int:membership_id>/remove/", members.member_remove, name="member_remove"),
    path(
        "invitations/<int:invitation_id>/revoke/",
        members.invitation_revoke,
        name="invitation_revoke",
    ),
    path("invite/<str:token>/", members.invitation_accept, name="invitation_accept"),
    # secret API keys
    path("keys/", keys.api_key_list, name="api_key_list"),
    path("keys/new/", keys.api_key_create, name="api_key_create"),
    path("keys/<str:key_id>/revoke/", keys.api_key_revoke, name="api_key_revoke"),
    # provider credentials
    path("credentials/", credentials.credential_list, name="credential_list"),
    path("credentials/new/", credentials.credential_create, name="credential_create"),
    path("credentials/<str:credential_id>/", credentials.credential_edit, name="credential_edit"),
    path(
        "credentials/<str:credential_id>/delete/",
        credentials.credential_delete,
        name="credential_delete",
    ),
    # carrier accounts (Twilio account SID and encrypted auth token)
    path("carrier-accounts/", telephony.carrier_account_list, name="carrier_account_list"),
    path(
        "carrier-accounts/new/",
        telephony.carrier_account_create,
        name="carrier_account_create",
    ),
    path(
        "carrier-accounts/<str:account_id>/",
        telephony.carrier_account_edit,
        name="carrier_account_edit",
    ),
    path(
        "carrier-accounts/<str:account_id>/delete/",
        telephony.carrier_account_delete,
        name="carrier_account_delete",
    ),
    # phone numbers: which agent answers each
    path("phone-numbers/", telephony.phone_number_list, name="phone_number_list"),
    path("phone-numbers/new/", telephony.phone_number_create, name="phone_number_create"),
    path(
        "phone-numbers/<str:number_id>/",
        telephony.phone_number_edit,
        name="phone_number_edit",
    ),
    path(
        "phone-numbers/<str:number_id>/delete/",
        telephony.phone_number_delete,
        name="phone_number_delete",
    ),
    # batch calls: an agent rings a list of numbers (a CSV upload)
    path("batches/", batches.batch_list, name="batch_list"),
    path("batches/new/", batches.batch_create, name="batch_create"),
    path("batches/<str:batch_id>/", batches.batch_detail, name="batch_detail"),
    path("batches/<str:batch_id>/pause/", batches.batch_pause, name="batch_pause"),
    path("batches/<str:batch_id>/resume/", batches.batch_resume, name="batch_resume"),
    path("batches/<str:batch_id>/cancel/", batches.batch_cancel, name="batch_cancel"),
    # agents
    path("agents/", agents.agent_list, name="agent_list"),
    path("agents/new/", agents.agent_create, name="agent_create"),
    path("agents/<str:agent_id>/", agents.agent_detail, name="agent_detail"),
    path("agents/<str:agent_id>/edit/", agents.agent_edit, name="agent_edit"),
    path("agents/<str:agent_id>/duplicate/", agents.agent_duplicate, name="agent_duplicate"),
    path("agents/<str:agent_id>/delete/", agents.agent_delete, name="agent_delete"),
    path(
        "agents/<str:agent_id>/versions/<int:number>/",
        agents.agent_version,
        name="agent_version",
    ),
    path("agents/<str:agent_id>/console/", console.agent_console, name="agent_console"),
    path(
        "agents/<str:agent_id>/console/token/",
        console.console_token,
        name="agent_console_token",
    ),
    path("agents/<str:agent_id>/widget-keys/", agents.widget_key_create, name="widget_key_create"),
    path(
        "agents/<str:agent_id>/widget-keys/<str:key>/revoke/",
        agents.widget_key_revoke,
        name="widget_key_revoke",
    ),
    # calls
    path("calls/", calls.call_list, name="call_list"),
    path("calls/<str:call_id>/", calls.call_detail, name="call_detail"),
    path("calls/<str:call_id>/end/", calls.call_end, name="call_end"),
    path("calls/<str:call_id>/hold/", calls.call_hold, name="call_hold"),
    # call recordings: signed, short-lived links (see dashboard/views/recordings.py)
    path(
        "calls/<str:call_id>/recording/play/",
        recordings.recording_play,
        name="recording_play",
    ),
    path(
        "calls/<str:call_id>/recording/download/",
        recordings.recording_download,
        name="recording_download",
    ),
    # audit: the access log and exports
    path("audit/", audit.access_log, name="access_log"),
    path("exports/", audit.export_list, name="export_list"),
    path("exports/new/", audit.export_create, name="export_create"),
    path("exports/<str:export_id>/", audit.export_detail, name="export_detail"),
    path("exports/<str:export_id>/download/", audit.export_download, name="export_download"),
    # usage and cost
    path("usage/", usage.usage, name="usage"),
    path("usage/export.csv", usage.usage_export, name="usage_export"),
    # tools
    path("tools/", tools.tool_list, name="tool_list"),
    path("tools/new/", tools.tool_create, name="tool_create"),
    path("tools/<str:tool_id>/", tools.tool_edit, name="tool_edit"),
    path("tools/<str:tool_id>/duplicate/", tools.tool_duplicate, name="tool_duplicate"),
    path("tools/<str:tool_id>/test/", tools.tool_test, name="tool_test"),
    path("tools/<str:tool_id>/delete/", tools.tool_delete, name="tool_delete"),
    path(
        "tools/<str:tool_id>/rotate-secret/",
        tools.tool_rotate_secret,
        name="tool_rotate_secret",
    ),
]
