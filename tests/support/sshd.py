"""Real OpenSSH servers on loopback for the deploy tests, with throwaway keys.

The port comes from the OS atomically: the test binds a listening socket on port 0 and keeps
it, and every accepted connection is handed to `sshd -i` (inetd mode) on its stdin/stdout. So
there is no probe-then-bind race, and a server can run without an sftp subsystem (old devices,
dropbear) to exercise the classic scp protocol.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import threading
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def available() -> bool:
    return Path(SSHD).exists()


def make_keys(d: Path) -> None:
    for name in ("host_key", "user_key"):
        if not (d / name).exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    shutil.copy(d / "user_key.pub", d / "authorized_keys")


class InetdSshd:
    """An OpenSSH server: our listening socket, one `sshd -i` per connection."""

    def __init__(self, d: Path, sftp: bool = True, host: str = "127.0.0.1") -> None:
        make_keys(d)
        self.config = d / ("sshd_config" if sftp else "sshd_config_nosftp")
        self.config.write_text(
            f"HostKey {d / 'host_key'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\n" + ("Subsystem sftp internal-sftp\n" if sftp else "")
        )
        self.log = open(d / f"{self.config.name}.log", "a")  # a file, not a pipe: sshd never blocks on it
        self.srv = socket.socket()
        self.srv.bind((host, 0))
        self.srv.listen(16)
        self.host, self.port = host, self.srv.getsockname()[1]
        self.key, self.known_hosts, self.user = d / "user_key", d / "known_hosts", getpass.getuser()
        self.procs: list[subprocess.Popen] = []
        Path("/run/sshd").mkdir(exist_ok=True)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            with conn:
                self.procs.append(
                    subprocess.Popen(
                        [SSHD, "-i", "-e", "-f", str(self.config)],
                        stdin=conn.fileno(),
                        stdout=conn.fileno(),
                        stderr=self.log,
                    )
                )

    def url(self, path: Path | str) -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}{path}"

    def ssh_args(self) -> list[str]:
        return ["-i", str(self.key), "-o", f"UserKnownHostsFile={self.known_hosts}"]

    def close(self) -> None:
        try:
            self.srv.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self.srv.close()
        self.thread.join(timeout=5)
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        self.log.close()
