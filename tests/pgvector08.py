"""A second test PostgreSQL with pgvector 0.8.0, the version Supabase runs (issue 24).

The embedded server of the tests (pgserver 0.1.4: PostgreSQL 16.2) carries pgvector 0.6.2, which has
no iterative index scan; Supabase runs 0.8, where the knowledge search turns it on. No wheel or Debian
binary ships pgvector 0.8 for that server, so this builds it:

1. downloads pgvector 0.8.0's source from Debian's archive (the `.orig` tarball is upstream's release,
   byte for byte) and checks its SHA-256;
2. copies pgserver's PostgreSQL install (relocatable: `pg_config` and the binaries find their files
   relative to themselves) into `.oneai/pg-vector-0.8/` (gitignored), in the wheel's layout
   (`pgserver/pginstall` beside `pgserver.libs`, where the binaries' RPATH finds libpq); the venv's own
   install is only read;
3. builds and installs pgvector into that copy with its `pg_config` and PGXS (`OPTFLAGS=` empty: no
   `-march=native`, so the build runs on any machine of the architecture), and writes a stamp.

It runs again only when the stamp is missing or stale (another pgserver, another tarball).

    python -m tests.pgvector08          # build, or say it is up to date (`make test` runs it)
    python -m tests.pgvector08 run CMD  # and run CMD with DATABASE_URL set to a server from the copy

`running_server` starts a throwaway server from the copy (initdb + pg_ctl, a unix socket in a
temporary directory) for the tests' fixture (tests/conftest.py) and stops it afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VERSION = "0.8.0"
SOURCE_URL = f"http://deb.debian.org/debian/pool/main/p/pgvector/pgvector_{VERSION}.orig.tar.gz"
SOURCE_SIZE = 122290
# From Debian trixie's Sources index (the same tarball as upstream's v0.8.0 release).
SOURCE_SHA256 = "867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0"

ROOT = REPO_ROOT / ".oneai" / "pg-vector-0.8"
INSTALL = ROOT / "pgserver" / "pginstall"
BIN = INSTALL / "bin"
STAMP = ROOT / ".built"
TARBALL = ROOT / f"pgvector_{VERSION}.orig.tar.gz"
SOURCE_DIR = ROOT / "src" / f"pgvector-{VERSION}"
# PostgreSQL will not run as root: pgserver then runs it as this user, and so does running_server.
ROOT_RUNS_AS = "pgserver"


class BuildError(RuntimeError):
    pass


def pgserver_site() -> Path:
    """The folder holding the installed `pgserver` package (found without importing it)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise BuildError("pgserver is not installed (make .venv/.installed)")
    return Path(spec.origin).resolve().parent.parent


def stamp_text() -> str:
    """What the build was made of: a different pgserver or tarball makes the stamp stale."""
    return f"pgvector {VERSION} sha256 {SOURCE_SHA256}\npgserver {importlib.metadata.version('pgserver')}\n"


def is_built() -> bool:
    return (
        STAMP.is_file()
        and STAMP.read_text(encoding="utf-8") == stamp_text()
        and (INSTALL / "lib" / "postgresql" / "vector.so").is_file()
    )


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_source() -> None:
    """The tarball into TARBALL, checked; a copy already there with the right digest is kept."""
    if TARBALL.is_file() and sha256_of(TARBALL.read_bytes()) == SOURCE_SHA256:
        return
    try:
        with urllib.request.urlopen(SOURCE_URL, timeout=60) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise BuildError(f"could not download {SOURCE_URL}: {exc}") from exc
    digest = sha256_of(data)
    if digest != SOURCE_SHA256:
        raise BuildError(
            f"{SOURCE_URL}: sha256 {digest} ({len(data)} bytes), expected {SOURCE_SHA256} ({SOURCE_SIZE} bytes);"
            " refusing to build it"
        )
    TARBALL.write_bytes(data)


def copy_pgserver_install() -> None:
    site = pgserver_site()
    for name in ("pgserver", "pgserver.libs"):
        shutil.rmtree(ROOT / name, ignore_errors=True)
    # Only the install and the libraries its binaries load (not pgserver's Python modules).
    shutil.copytree(site / "pgserver" / "pginstall", INSTALL, symlinks=True)
    shutil.copytree(site / "pgserver.libs", ROOT / "pgserver.libs", symlinks=True)


def build_pgvector() -> None:
    shutil.rmtree(ROOT / "src", ignore_errors=True)
    (ROOT / "src").mkdir()
    with tarfile.open(TARBALL) as tar:
        tar.extractall(ROOT / "src", filter="data")
    make = ["make", "-C", str(SOURCE_DIR), f"PG_CONFIG={BIN / 'pg_config'}", "OPTFLAGS="]
    for command in (make, [*make, "install"]):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BuildError(
                f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
    control = (INSTALL / "share" / "postgresql" / "extension" / "vector.control").read_text(encoding="utf-8")
    if f"default_version = '{VERSION}'" not in control:
        raise BuildError(f"the installed vector.control is not {VERSION}:\n{control}")


def ensure_built() -> bool:
    """Build unless the stamp says it is done; returns whether it built. Concurrent callers wait for
    each other (a lock file), and the stamp is written last: an interrupted build starts over."""
    ROOT.mkdir(parents=True, exist_ok=True)
    with (ROOT / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_built():
            STAMP.touch()  # newer than what make compares it with
            return False
        STAMP.unlink(missing_ok=True)
        download_source()
        copy_pgserver_install()
        build_pgvector()
        STAMP.write_text(stamp_text(), encoding="utf-8")
        return True


# --- a server from the copy ------------------------------------------------------------------------------


def _run_as() -> str | None:
    """subprocess's `user=`: PostgreSQL will not run as root (pgserver makes and uses this user too)."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(ROOT_RUNS_AS)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/bash", ROOT_RUNS_AS], check=True, capture_output=True)
    return ROOT_RUNS_AS


def _readable_by_all(path: Path) -> None:
    """Every folder above `path` readable and traversable by all, so the server's user reaches the
    install (what pgserver does for its own install when it runs as root)."""
    for folder in (path, *path.parents):
        folder.chmod(folder.stat().st_mode | 0o055)


def _pg(command: list[str], user: str | None) -> None:
    # Output to a file, not a pipe: the server pg_ctl starts keeps inherited pipes open (pgserver says so too).
    with tempfile.TemporaryFile("w+") as out:
        result = subprocess.run(command, stdout=out, stderr=out, text=True, check=False, user=user)
        if result.returncode != 0:
            out.seek(0)
            raise BuildError(f"{' '.join(command)} failed ({result.returncode}):\n{out.read()}")


@contextlib.contextmanager
def running_server() -> Iterator[str]:
    """A fresh server from the built copy, listening on a unix socket only; yields its admin URL
    (user postgres, database postgres) and stops it (and deletes its data) afterwards."""
    if not is_built():
        raise BuildError(f"pgvector {VERSION} is not built: run `python -m tests.pgvector08` (make does)")
    run_as = _run_as()
    if run_as is not None:
        _readable_by_all(INSTALL)
    # A short path under the temporary directory: a unix socket's path has at most 107 bytes.
    with tempfile.TemporaryDirectory(prefix="oneai-pgv08-") as temp:
        base = Path(temp)
        data, sockets = base / "data", base / "s"
        sockets.mkdir()
        base.chmod(0o755)
        sockets.chmod(0o777)
        if run_as is not None:
            import pwd

            entry = pwd.getpwnam(ROOT_RUNS_AS)
            data.mkdir(mode=0o700)
            os.chown(data, entry.pw_uid, entry.pw_gid)
            os.chown(sockets, entry.pw_uid, entry.pw_gid)
        initdb = [str(BIN / "initdb"), "-D", str(data), "--auth=trust", "--encoding=utf8", "-U", "postgres"]
        _pg(initdb, run_as)
        log = sockets / "log"
        ctl = [str(BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60"]
        start = [*ctl, "-o", f"-c listen_addresses='' -k {sockets}", "start"]
        try:
            _pg(start, run_as)
        except BuildError as exc:
            raise BuildError(f"{exc}\nthe server's log:\n{log.read_text() if log.exists() else ''}") from None
        try:
            yield f"postgresql://postgres@/postgres?host={sockets}"
        finally:
            _pg([*ctl, "-m", "fast", "stop"], run_as)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    started = time.monotonic()
    try:
        built = ensure_built()
    except BuildError as exc:
        print(f"pgvector {VERSION}: {exc}", file=sys.stderr)
        return 1
    took = time.monotonic() - started
    what = f"built into {INSTALL} in {took:.1f} s" if built else "up to date"
    print(f"pgvector {VERSION} for the tests: {what}", flush=True)
    if args[:1] == ["run"] and len(args) > 1:
        # `python -m tests.pgvector08 run CMD ...`: CMD with DATABASE_URL set to a server from the copy
        # (e.g. `.venv/bin/python -m bench knowledge_search`, the benchmark on pgvector 0.8)
        with running_server() as admin_url:
            return subprocess.run(args[1:], env={**os.environ, "DATABASE_URL": admin_url}, check=False).returncode
    if args:
        print("usage: python -m tests.pgvector08 [run CMD ...]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
