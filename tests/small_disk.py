"""A real small filesystem for tests of a full disk: a tmpfs of a few megabytes mounted by
the test itself (the tests run as root), filled up with a file and freed by deleting it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class SmallDisk:
    def __init__(self, mountpoint: Path) -> None:
        self.path = mountpoint
        self.filler = mountpoint / "filler"

    def fill(self) -> None:
        """Take every free byte (a filler file written until the disk says no)."""
        chunk = b"\0" * 65536
        with self.filler.open("ab", buffering=0) as f:
            for size in (65536, 4096, 512):
                try:
                    while True:
                        f.write(chunk[:size])
                except OSError as exc:
                    if exc.errno != 28:  # ENOSPC
                        raise
        assert self.free() < 4096, self.free()

    def make_room(self) -> None:
        self.filler.unlink(missing_ok=True)

    def free(self) -> int:
        return shutil.disk_usage(self.path).free


@contextmanager
def small_disk(mountpoint: Path, size_mb: int) -> Iterator[SmallDisk]:
    """A tmpfs of `size_mb` at `mountpoint`, unmounted afterwards whatever happens (lazily if
    a file on it is still open)."""
    mountpoint.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs",
                    str(mountpoint)], check=True)
    try:
        yield SmallDisk(mountpoint)
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mountpoint)], check=True)
        assert not os.path.ismount(mountpoint)
