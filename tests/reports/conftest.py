from tests.api.conftest import *  # noqa: F401,F403  (agent, manager, support, billing, deliver, sending_account …)
