from django.apps import AppConfig


class TelephonyConfig(AppConfig):
    name = "agents.telephony"
    label = "telephony"
    verbose_name = "Telephony"
