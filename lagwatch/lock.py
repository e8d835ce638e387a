"""One daemon per state directory: an exclusive lock on ``state_dir/lagwatch.lock``.

Two daemons sharing a directory would take over each other's incidents and history. The
lock is the kernel's (flock), so a daemon that was killed holds nothing: the next start
takes it over. The file says which process holds it, for the error message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

FILE_NAME = "lagwatch.lock"


class StateDirInUseError(Exception):
    """Another process holds the state directory."""

    def __init__(self, state_dir: str, pid: str) -> None:
        super().__init__(f"state_dir {state_dir} is in use by another lagwatch (pid {pid}); "
                         "give each daemon its own state_dir")


class LockNotAFileError(StateDirInUseError):
    """Something that is not a regular file stands where the lock file goes: it could not
    be locked, and two daemons would share the directory."""

    def __init__(self, path: Path) -> None:
        Exception.__init__(self, f"{path} is not a regular file, so lagwatch cannot lock "
                                 "its state_dir; remove it or give this daemon another "
                                 "state_dir")


class DirLock:
    """Holds a state directory for this process until released."""

    def __init__(self, state_dir: str) -> None:
        """Take the lock; raise StateDirInUseError when another process holds it (or
        LockNotAFileError when a directory, a link or a device stands at the lock's path),
        OSError when the directory cannot be made or written (the store then reports it
        unusable)."""
        self.path = Path(state_dir) / FILE_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_symlink() or (self.path.exists() and not self.path.is_file()):
            raise LockNotAFileError(self.path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateDirInUseError(state_dir, holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd: int | None = fd

    def release(self) -> None:
        """Let the directory go (a second call does nothing)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None
