"""People, accounts and tickets for the workspace tests: the API tests' fixtures, reused."""

from tests.api.conftest import (  # noqa: F401  (pytest fixtures)
    agent, billing, billing_account, deliver, fast_passwords, manager, outsider, sending_account, support,
)
