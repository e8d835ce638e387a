"""Build Helm from its Go module release, once, for the chart's tests.

    python tools/helm.py            # build it if needed; print the binary's path
    python tools/helm.py --cached   # exit 1 unless it is built already

``go install helm.sh/helm/v4/cmd/helm@VERSION`` (the Go toolchain, the Go module proxy)
into a cache directory (``$LAGWATCH_KAFKA_CACHE``, default ``~/.cache/lagwatch``, beside
the Kafka jars), reused across runs; the first build takes a few minutes. Several
processes starting at once build it once: the binary is built into a private directory
and renamed into place under a file lock.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HELM_VERSION = "v4.3.2"
MODULE = "helm.sh/helm/v4/cmd/helm"


class HelmError(Exception):
    """Helm cannot be built here; the message says why."""


def cache_dir() -> Path:
    """Where the built binary is kept between runs."""
    root = os.environ.get("LAGWATCH_KAFKA_CACHE") or Path.home() / ".cache" / "lagwatch"
    return Path(root) / f"helm-{HELM_VERSION}"


def ensure_helm(progress: bool = True) -> Path:
    """Return the helm binary, building it first if it is not in the cache."""
    binary = cache_dir() / "helm"
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise HelmError("'go' was not found on PATH; the chart's tests build helm "
                        f"{HELM_VERSION} with the Go toolchain (install Go 1.24 or newer)")
    binary.parent.parent.mkdir(parents=True, exist_ok=True)
    with binary.parent.with_name(binary.parent.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.is_file():  # another process built it meanwhile
            return binary
        if progress:
            print(f"lagwatch: building helm {HELM_VERSION} from its Go module into "
                  f"{binary.parent} (first run only, a few minutes)...", file=sys.stderr,
                  flush=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{binary.parent.name}-",
                                    dir=binary.parent.parent))
        try:
            env = dict(os.environ, GOBIN=str(tmp), GOFLAGS="-mod=mod", CGO_ENABLED="0")
            built = subprocess.run([go, "install", f"{MODULE}@{HELM_VERSION}"], env=env,
                                   capture_output=True, text=True, check=False)
            if built.returncode != 0 or not (tmp / "helm").is_file():
                tail = (built.stdout + built.stderr).strip().splitlines()[-5:]
                raise HelmError(f"go install {MODULE}@{HELM_VERSION} failed: "
                                + (" | ".join(tail) or "it built nothing"))
            tmp.chmod(0o755)
            tmp.rename(binary.parent)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return binary


if __name__ == "__main__":
    if sys.argv[1:] == ["--cached"]:
        sys.exit(0 if (cache_dir() / "helm").is_file() else 1)
    try:
        print(ensure_helm())
    except HelmError as exc:
        sys.exit(f"lagwatch: {exc}")
