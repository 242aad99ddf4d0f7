"""The demo site (a real Daphne with the demo agent) is shared by the widget's tests."""

from tests.e2e.test_widget_call import demo_site  # noqa: F401 (a fixture, shared)
