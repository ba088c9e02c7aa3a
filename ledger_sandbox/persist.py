"""Keep an emulator's state in a file across restarts (``python3 -m ledger_sandbox
--state-dir DIR``).

One file per emulator, ``DIR/<provider>-state.json`` (``xero-state.json``,
``qbo-state.json``), holding exactly what ``GET /_sandbox/dump`` answers
(:meth:`SandboxApp.dump_json`): ledger objects, organisations or companies, OAuth clients,
grants, codes and tokens, the stored idempotent answers, the webhook settings and the number
and id sequences.  Rate-limit counters and armed faults are not kept.

* At start, :meth:`StatePersister.open` takes ``DIR/<provider>-state.lock`` (one process per
  state file) and loads the file when there is one.  A file that cannot be read back (not
  JSON, truncated, another provider's, another :data:`~ledger_sandbox.core.STATE_VERSION`, a
  shape the emulator does not take) stops the start with :class:`StateFileError`, whose
  message names the file and says to delete it: the sandbox never starts empty over a state
  it could not read.
* After each request that may have changed the state (``SandboxApp.on_change``) a background
  thread saves: at once after a quiet period, then at most once every ``interval`` seconds
  while changes keep coming; an unchanged state is not rewritten.
* :meth:`StatePersister.close` (a clean stop, after the server stopped and drained its
  requests) saves a last time, so every request that was answered is on disk.
* A save is atomic: the snapshot is taken under the app lock, written to a temporary file in
  ``DIR`` (mode 0600: the file holds client secrets and tokens), flushed, fsynced, renamed
  over the state file with ``os.replace``, and the directory is fsynced.  A kill -9 (or a
  crash, or a power cut) therefore leaves the previous complete file: what it loses is what
  was answered since the last save finished, at most ``interval`` seconds plus one save.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .core import STATE_VERSION, SandboxApp

LABELS = {"xero": "Xero", "qbo": "QuickBooks Online"}


class StateFileError(Exception):
    """A state file the sandbox cannot start from (or a state directory it cannot use)."""


def state_file(directory: str | os.PathLike, provider: str) -> Path:
    """The state file of ``provider`` in ``directory``."""
    return Path(directory) / f"{provider}-state.json"


class StatePersister:
    """Loads an app's state from its file at start and keeps the file up to date."""

    def __init__(self, app: SandboxApp, directory: str | os.PathLike, interval: float = 0.5):
        self.app = app
        self.directory = Path(directory)
        self.path = state_file(directory, app.name)
        self.lock_path = self.directory / f"{app.name}-state.lock"
        self.interval = interval
        self.label = LABELS.get(app.name, app.name)
        self._lock_fd: int | None = None
        self._save_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._written: str | None = None  # sha256 of the bytes the file holds
        self._last_save = 0.0
        self._last_error: str | None = None
        self._started = False  # saving began (close() saves only then)

    # ------------------------------------------------------------------ start

    def open(self) -> bool:
        """Lock the state file for this process and load it when present.

        Returns True when a state was loaded, False when there was none (the app keeps its
        seed).  Raises :class:`StateFileError` with a message for the user.
        """
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise StateFileError(f"ledger_sandbox: cannot use the state directory "
                                 f"{self.directory}: {error.strerror or error}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StateFileError(
                f"ledger_sandbox: the {self.label} state file {self.path} is in use by another "
                f"running sandbox; stop it first, or give this one another --state-dir"
            ) from None
        self._lock_fd = fd
        self._remove_stale_temporaries()
        if not self.path.exists():
            return False
        try:
            self._restore()
        except StateFileError:
            self._release()  # and never save over the file it could not read
            raise
        return True

    def _refuse(self, reason: str) -> StateFileError:
        return StateFileError(
            f"ledger_sandbox: cannot start the {self.label} sandbox from its state file "
            f"{self.path}: {reason}. The file was left as it is; delete it to start from the "
            f"seed instead (rm {self.path}): the sandbox then forgets its documents and "
            f"connections, so reconnect the ledger connections in Odoo afterwards.")

    def _restore(self) -> None:
        try:
            raw = self.path.read_bytes()
        except OSError as error:
            raise self._refuse(f"it cannot be read ({error.strerror or error})") from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise self._refuse(f"it is not valid JSON, it may be corrupt or truncated "
                               f"({error})") from None
        if not isinstance(data, dict) or "state_version" not in data:
            raise self._refuse("it does not hold a ledger sandbox state")
        if data.get("provider") != self.app.name:
            raise self._refuse(f"it holds the state of the {data.get('provider')!r} emulator, "
                               f"not of {self.app.name!r}")
        if data["state_version"] != STATE_VERSION:
            raise self._refuse(f"it was written by another version of the ledger sandbox "
                               f"(state version {data['state_version']!r}; this sandbox reads "
                               f"version {STATE_VERSION})")
        try:
            self.app.check_state(data)
        except ValueError as error:
            raise self._refuse(f"it is incomplete or damaged ({error})") from None
        try:
            self.app.load(data)
        except Exception as error:  # noqa: BLE001 - any failure means "not loadable"
            raise self._refuse(f"its content does not fit this sandbox "
                               f"({type(error).__name__}: {error})") from None
        self._written = hashlib.sha256(raw).hexdigest()

    def _remove_stale_temporaries(self) -> None:
        # temporary files a killed process left behind (we hold the lock: nobody writes)
        for stale in self.directory.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()

    def start(self) -> StatePersister:
        """Save the current state once, then save after every change (background thread)."""
        try:
            self.save()
        except OSError as error:
            raise StateFileError(f"ledger_sandbox: cannot write the {self.label} state file "
                                 f"{self.path}: {error.strerror or error}") from None
        self._started = True
        self.app.on_change = self.mark
        self._thread = threading.Thread(target=self._run, name=f"{self.app.name}-state-saver",
                                        daemon=True)
        self._thread.start()
        return self

    # ------------------------------------------------------------------ saving

    def mark(self) -> None:
        """Note that the state may have changed (a save follows)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            delay = self._last_save + self.interval - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return  # close() saves
            self._wake.clear()
            try:
                self.save()
            except Exception as error:  # noqa: BLE001 - keep saving: report and retry
                self._report(error)
                self._wake.set()  # try again after the interval
                if self._stop.wait(self.interval):
                    return

    def _report(self, error: Exception) -> None:
        reason = getattr(error, "strerror", None) or error
        message = (f"ledger_sandbox: could not save the {self.label} state to {self.path}: "
                   f"{reason}; retrying")
        if message != self._last_error:  # once per distinct problem, not twice a second
            print(message, file=sys.stderr, flush=True)
            self._last_error = message

    def save(self) -> bool:
        """Write the current state if it differs from the file's; returns True if written."""
        with self._save_lock:
            payload = self.app.dump_json().encode("utf-8")
            digest = hashlib.sha256(payload).hexdigest()
            self._last_save = time.monotonic()
            if digest == self._written:
                return False
            self._write(payload)
            self._written = digest
            self._last_error = None
            return True

    def _write(self, payload: bytes) -> None:
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power cut
        finally:
            os.close(directory)

    # ------------------------------------------------------------------ stop

    def close(self) -> None:
        """Stop the background saver, save a last time and release the lock.

        Call it after the server stopped (and drained): the state then no longer changes.
        Raises OSError when the last save fails (the caller reports it).
        """
        self.app.on_change = None
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            if self._started and self._lock_fd is not None:
                self.save()
        finally:
            self._started = False
            self._release()

    def _release(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> StatePersister:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
