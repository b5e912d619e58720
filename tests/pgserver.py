"""A throwaway PostgreSQL server for the tune tests: Debian's binaries, a fresh cluster in a temporary
folder, listening only on a unix socket there (no TCP port), trust authentication, stopped afterwards.

initdb refuses to run as root, so as root the cluster belongs to the `postgres` user (created by
Debian's package) or, failing that, `nobody`. Install: `apt-get install -y postgresql` (.ci/run does).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return versions[-1] if versions else None


def _as_owner(cmd: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *cmd] if owner else cmd


def _owner() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists for initdb")


class PgServer:
    """start() -> a postgresql:// URL for database `postgres` over the unix socket; stop() removes it."""

    def __init__(self):
        self.initdb, self.pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        self.dir: Path | None = None
        self.owner = None

    @property
    def available(self) -> bool:
        return bool(self.initdb and self.pg_ctl)

    def start(self) -> str:
        self.owner = _owner()
        # not under pytest's tmp_path: its parents are 0700 root, which the server's user cannot enter
        self.dir = Path(tempfile.mkdtemp(prefix="cifarlab-pg-"))
        os.chmod(self.dir, 0o755)
        if self.owner:
            shutil.chown(self.dir, self.owner)
        data, log = self.dir / "data", self.dir / "server.log"
        subprocess.run(_as_owner([self.initdb, "-D", str(data), "-A", "trust", "-U", "tune", "--no-sync",
                                  "-E", "UTF8"], self.owner), check=True, capture_output=True)
        opts = f"-k {self.dir} -c listen_addresses='' -c fsync=off -c max_connections=50"
        subprocess.run(_as_owner([self.pg_ctl, "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60",
                                  "start"], self.owner), check=True, capture_output=True)
        return f"postgresql://tune@/postgres?host={self.dir}"

    def stop(self) -> None:
        if self.dir is None:
            return
        subprocess.run(_as_owner([self.pg_ctl, "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop"],
                                 self.owner), capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
