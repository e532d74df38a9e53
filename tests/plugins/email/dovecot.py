"""A private Dovecot IMAP server for tests and the benchmark (Debian package `dovecot-imapd`).

Its own config, run and state dirs in a temp dir, a free loopback port, plain login: any user
name logs in with PASSWORD, so every test gets a fresh, empty mailbox by choosing a new name.
Dovecot's login and mail processes refuse to run as root: they run as dovenull / dovecot, so
the mail dir belongs to `dovecot` and the temp dir is made traversable.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from imapclient import IMAPClient

from omnidesk.devtools.procs import steady_port

PASSWORD = "secret"
DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else "")


def missing() -> str | None:
    """Why a private Dovecot cannot run here (None: it can)."""
    if not DOVECOT:
        return "dovecot not installed (apt-get install dovecot-imapd)"
    try:
        pwd.getpwnam("dovecot")
        pwd.getpwnam("dovenull")
    except KeyError:
        return "the dovecot / dovenull system users are missing (apt-get install dovecot-imapd)"
    if os.geteuid() != 0:
        return "a private Dovecot needs to start as root (it drops to dovecot/dovenull itself)"
    return None


class Dovecot:
    def __init__(self, base: Path, port: int) -> None:
        self.base = base
        self.port = port
        self.host = "127.0.0.1"

    @classmethod
    def start(cls, *, fast: bool = False) -> Dovecot:
        problem = missing()
        if problem:
            raise RuntimeError(problem)
        base = Path(tempfile.mkdtemp(prefix="omnidesk-dovecot-"))
        os.chmod(base, 0o755)
        port = steady_port()  # kept across a restart (tests/faults/test_imap_restart.py)
        mail = base / "mail"
        mail.mkdir()
        uid, gid = pwd.getpwnam("dovecot").pw_uid, grp.getgrnam("dovecot").gr_gid
        os.chown(mail, uid, gid)
        extra = "mail_fsync = never\nmaildir_very_dirty_syncs = yes\n" if fast else ""
        (base / "dovecot.conf").write_text(
            f"""
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
instance_name = omnidesk-{port}
log_path = {base}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {uid}
last_valid_uid = 0
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={mail}/%u
}}
mail_location = maildir:{mail}/%u
mail_max_userip_connections = 1000
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
default_login_user = dovenull
default_internal_user = dovecot
protocol imap {{
  imap_idle_notify_interval = 1 secs
}}
{extra}""",
            encoding="utf-8",
        )
        server = cls(base, port)
        # The daemon keeps inherited pipes open: send its output to a file, never to a pipe we wait on.
        with open(base / "start.log", "wb") as out:
            started = subprocess.run([DOVECOT, "-c", str(base / "dovecot.conf")], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT, timeout=30)
        if started.returncode != 0:
            text = (base / "start.log").read_text(errors="replace")
            shutil.rmtree(base, ignore_errors=True)
            raise RuntimeError(f"dovecot did not start: {text[-2000:]}")
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection((server.host, port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    server.stop()
                    raise RuntimeError(f"dovecot did not listen on {port}: {server.log()[-2000:]}")
                time.sleep(0.05)
        return server

    def log(self) -> str:
        path = self.base / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        pid_file = self.base / "run" / "master.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().strip())
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        shutil.rmtree(self.base, ignore_errors=True)

    def kick(self, user: str) -> None:
        """Disconnect every session of `user` (the server dropping the connection)."""
        subprocess.run(
            ["doveadm", "-c", str(self.base / "dovecot.conf"), "kick", user], check=False, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=15,
        )

    @staticmethod
    def new_user(prefix: str = "user") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    def client(self, user: str) -> IMAPClient:
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
        client.login(user, PASSWORD)
        return client

    def append(self, user: str, raw: bytes, *, folder: str = "INBOX", flags: tuple[bytes | str, ...] = ()) -> None:
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw, flags=flags)
