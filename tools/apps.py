from django.apps import AppConfig


class ToolsConfig(AppConfig):
    name = "tools"
    verbose_name = "Tools"

    def ready(self) -> None:
        from calls.signals import call_ended
        from tools.runner import cancel_runs_of_ended_call

        call_ended.connect(cancel_runs_of_ended_call, dispatch_uid="tools.cancel_runs")
