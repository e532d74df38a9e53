"""Per-account config: validated with every problem named; secrets never printable, encrypted at rest."""

from dataclasses import dataclass
from typing import Literal

import pytest

from omnidesk.plugins.config import ConfigSchema, Secret, describe, load_config, setting
from omnidesk.plugins.errors import ConfigInvalid


@dataclass(frozen=True)
class Sample(ConfigSchema):
    token: Secret = setting(help="API token")
    host: str = setting(help="server")
    port: int = setting(993)
    mode: Literal["move", "flag", "leave"] = setting("leave")
    folders: tuple[str, ...] = setting(("INBOX",))
    ratio: float = setting(1.0)
    tls: bool = setting(True)
    note: str | None = setting(None)


def test_valid_config_with_defaults():
    cfg = load_config(Sample, {"host": "imap.example.com", "folders": ["INBOX", "Support"]}, {"token": "t0k"})
    assert (cfg.host, cfg.port, cfg.folders, cfg.mode, cfg.tls) == ("imap.example.com", 993, ("INBOX", "Support"), "leave", True)
    assert cfg.token.reveal() == "t0k"


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigInvalid) as exc:
        load_config(Sample, {"port": "993", "mode": "delete", "tls": "yes", "colour": "red"}, {})
    text = str(exc.value)
    for expected in ("unknown setting(s): colour", "host: required setting is missing", "token: required secret is missing",
                     "port: must be a whole number", "mode: must be one of", "tls: must be true or false"):
        assert expected in text


def test_secret_from_the_environment_and_never_in_plain_config():
    cfg = load_config(Sample, {"host": "h", "token": {"env": "SAMPLE_TOKEN"}}, {}, environ={"SAMPLE_TOKEN": "from-env"})
    assert cfg.token.reveal() == "from-env"
    with pytest.raises(ConfigInvalid, match="SAMPLE_TOKEN is not set"):
        load_config(Sample, {"host": "h", "token": {"env": "SAMPLE_TOKEN"}}, {}, environ={})
    with pytest.raises(ConfigInvalid, match="must be stored encrypted"):
        load_config(Sample, {"host": "h", "token": "plain-text"}, {})


def test_secrets_do_not_print():
    cfg = load_config(Sample, {"host": "h"}, {"token": "hunter2"})
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.token) and "hunter2" not in f"{cfg}"


def test_describe_for_docs_and_api():
    fields = {f["name"]: f for f in describe(Sample)}
    assert fields["token"] == {"name": "token", "type": "secret", "required": True, "secret": True, "default": None, "help": "API token"}
    assert fields["folders"]["default"] == ["INBOX"] and fields["folders"]["type"] == "list of text"
    assert fields["note"]["type"] == "text (optional)"


@pytest.mark.django_db
def test_secrets_are_encrypted_at_rest(api_account):
    from omnidesk.plugins.crypto import decrypt_secrets

    assert "s3cret" not in api_account.secrets_encrypted
    assert decrypt_secrets(api_account.secrets_encrypted) == {"secret": "s3cret"}


@pytest.mark.django_db
def test_saving_keeps_stored_secrets_and_refuses_bad_config(api_account):
    from omnidesk.plugins.services import account_plugin, channel_account_save

    channel_account_save(kind="api", slug="acme-api", name="Acme", config={"callback_url": "https://x"}, account=api_account)
    assert account_plugin(api_account).config.secret.reveal() == "s3cret"
    with pytest.raises(ConfigInvalid, match="timeout_s: must be a number"):
        channel_account_save(kind="api", slug="acme-api", name="Acme", config={"timeout_s": "soon"}, account=api_account)
    with pytest.raises(ConfigInvalid, match="unknown secret"):
        channel_account_save(kind="api", slug="acme-api", name="Acme", config={}, secrets={"password": "x"}, account=api_account)
