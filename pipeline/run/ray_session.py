"""Joining a Ray cluster, or starting a private local instance that does not outlive the job.

A local instance gets its own temporary folder (Ray's session logs and sockets), removed
when the job ends. Ray's head processes die with the driver, but its agents lingered for
about a minute after a SIGKILL; so a small watchdog (``python -m pipeline.run.ray_session``)
waits for the driver and, if it dies without cleaning up, kills every process that still
has a file open in that folder and removes it. The next job also removes any folder whose
owner is gone, should the watchdog itself have been killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeline.errors import ConfigError
from pipeline.tempfiles import pid_alive

log = logging.getLogger(__name__)

#: Prefix of the temporary folders of the local instances this pipeline starts.
TEMP_PREFIX = "restore-ray-"
_OWNER_FILE = "owner.pid"


def ray_module() -> ModuleType:
    """Ray, imported on first use: the inline executor and plain imports never pay for it."""
    import ray

    return ray


def processes_using(folder: Path) -> list[int]:
    """Pids of processes with a file open under ``folder`` (Ray's logs, sockets)."""
    prefix = str(folder.resolve()) + os.sep
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if any(os.readlink(fd).startswith(prefix) for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
        except OSError:  # gone meanwhile, or not ours to look at
            continue
    return pids


def reap(folder: Path) -> None:
    """Kill what a dead job's local instance left running, then remove its folder."""
    for pid in processes_using(folder):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)


def remove_stale_temp_dirs(root: str | None = None) -> list[Path]:
    """Reap the temporary folders of local instances whose owning job is gone."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(TEMP_PREFIX + "*"):
        try:
            pid = int((folder / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not pid_alive(pid):
            reap(folder)
            removed.append(folder)
    return removed


#: How long ``close()`` waits for the watchdog to notice the folder is gone.
WATCHDOG_EXIT_S = 5.0


def watch(owner: int, folder: Path, poll_s: float = 0.5) -> None:
    """Wait while ``owner`` lives and ``folder`` exists; reap the folder if the owner died."""
    while folder.exists() and pid_alive(owner):
        time.sleep(poll_s)
    if folder.exists():
        reap(folder)


def route_raylet_messages() -> None:
    """Send the errors the raylet pushes to the driver to the debug log: Ray prints them,
    coloured and long (a killed worker's account), on standard output, where ``-o -``
    writes the video. The actor pool reports a lost worker in one line of its own."""
    from ray._private import worker as ray_worker

    printer = ray_worker.print_to_stdstream
    if getattr(printer, "routed", False):
        return

    def routed(data: dict[str, Any], ignore_prefix: bool) -> None:
        if data.get("pid") != "raylet":
            printer(data, ignore_prefix)
            return
        for line in data.get("lines", []):
            log.debug("raylet: %s", line)

    routed.routed = True  # type: ignore[attr-defined]
    ray_worker.print_to_stdstream = routed


class RaySession:
    """Ray for one job: joins ``address``, or starts a private local instance (``None``).

    When Ray is already initialised (a test, a notebook) it is used as it is and left
    running; only an instance this session started is shut down by ``close()``.
    """

    def __init__(self, address: str | None) -> None:
        ray = ray_module()
        self.owned = False
        self.temp_dir: str | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {}
        if address is None:
            remove_stale_temp_dirs()
            self.temp_dir = tempfile.mkdtemp(prefix=TEMP_PREFIX)
            Path(self.temp_dir, _OWNER_FILE).write_text(str(os.getpid()))
            kwargs["_temp_dir"] = self.temp_dir
            # Its own session: a Ctrl-C or SIGKILL of the job's process group spares it.
            self._watchdog = subprocess.Popen(
                [sys.executable, "-m", "pipeline.run.ray_session", str(os.getpid()), self.temp_dir],
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=Path(__file__).resolve().parents[2],  # the repository root
            )
        # ray.init replaces the driver's SIGTERM handler with one that exits at once (1);
        # an application's own handler (the CLI's: clean up, exit 143) is put back.
        on_term = signal.getsignal(signal.SIGTERM)
        try:
            # "local" starts a private instance and ignores RAY_ADDRESS: the client
            # connects only where the config or the CLI says.
            ray.init(
                address=address or "local",
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
                configure_logging=True,
                **kwargs,
            )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            self._remove_temp_dir()
            raise ConfigError(f"cannot join Ray cluster at {address!r}: {exc}") from exc
        finally:
            if callable(on_term) and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, on_term)
        route_raylet_messages()
        self.owned = True

    def _remove_temp_dir(self) -> None:
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None
        if self._watchdog is not None:
            # It sees the folder gone and exits; waiting reaps it (Python warns about a
            # child still running when its Popen is collected).
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watchdog.wait(timeout=WATCHDOG_EXIT_S)
            self._watchdog = None

    def close(self) -> None:
        """Shut down what this session started (a joined cluster only loses the client)."""
        if self.owned:
            with contextlib.suppress(Exception):
                ray_module().shutdown()
            self.owned = False
        self._remove_temp_dir()


if __name__ == "__main__":
    watch(int(sys.argv[1]), Path(sys.argv[2]))
