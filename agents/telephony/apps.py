from django.apps import AppConfig


class TelephonyConfig(AppConfig):
    name = "agents.telephony"
    label = "telephony"
    verbose_name = "Telephony"

    def ready(self) -> None:
        from agents.telephony.erasure import forget_end_user
        from retention.erasure import end_user_erased

        end_user_erased.connect(forget_end_user, dispatch_uid="telephony.forget_end_user")
