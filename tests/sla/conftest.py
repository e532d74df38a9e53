from tests.api.conftest import agent, deliver, manager, support  # noqa: F401  (shared API fixtures)
