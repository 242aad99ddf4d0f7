from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        from agents.versions import on_tool_changed
        from tools.actions import tool_changed

        tool_changed.connect(on_tool_changed, dispatch_uid="agents.reversion_on_tool_change")
