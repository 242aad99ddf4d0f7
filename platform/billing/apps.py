from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing import signals, tasks

        signals.notices_due.connect(
            tasks.queue_budget_notices, dispatch_uid="billing.budget_notices"
        )
