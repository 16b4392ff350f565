"""Atomic, pickle-free, verifiable storage of run results.

Files
-----
Every file is written to a temporary name (``.tmp-*``) in its final directory, fsynced, given the
mode the user's umask asks for (``0666 & ~umask``, as ``open`` would) and renamed into place
(``os.replace`` is atomic on POSIX), so an interrupted write never leaves a file that looks
complete. A writer holds an ``flock`` on its temporary file while writing, so
:func:`clean_partial` removes the leftovers of a killed writer and never a live one's file.

Run directories
---------------
:func:`write_run` writes a run directory: ``config.toml``, ``result.npz``, then ``summary.json``
(its presence marks a finished run). The summary records the size and sha256 of the other two
(``summary["files"]``), so :func:`verify_run` can tell a whole run from a truncated or altered one.

Replacing a finished run (``--overwrite``) is atomic *at the directory level*: the new run is
written whole into a sibling staging directory ``.<name>.tmp-*`` and exchanged with the old one
in one ``renameat2(RENAME_EXCHANGE)`` (Linux >= 3.15; elsewhere two renames, and
:func:`recover_run_dir` puts the old run back if a kill falls between them). At every instant
``out`` holds the old run whole or the new run whole, never a mix (README, "Reliability").

Arrays are loaded with ``allow_pickle=False``.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import signal
import tempfile

import numpy as np

__all__ = ["atomic_write_bytes", "atomic_write_text", "save_arrays", "load_arrays", "save_json", "load_json",
           "arrays_bytes", "file_mode", "clean_partial", "write_run", "verify_run", "recover_run_dir",
           "check_output_location", "OutputLocationError", "RUN_FILES", "TEST_KILL_ENV"]

#: The files of a run directory, in write order (summary.json last: it marks a finished run).
RUN_FILES = ("config.toml", "result.npz", "summary.json")

#: Test-only: a write phase at which the process SIGKILLs itself (tests/test_store_reliability.py
#: kills ``--overwrite`` at each phase): ``staged-result``, ``staged``, ``swapped``, ``in-place-result``.
TEST_KILL_ENV = "MEANFIELD_TEST_KILL_AT"


def _test_kill(phase):
    if os.environ.get(TEST_KILL_ENV) == phase:
        os.kill(os.getpid(), signal.SIGKILL)


# --------------------------------------------------------------------------- modes
def _umask() -> int:
    """The process umask, read without changing it where the kernel reports it (Linux >= 4.7)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but only for an instant)
    os.umask(old)
    return old


def file_mode() -> int:
    """Mode of a new file as ``open`` would create it: ``0o666 & ~umask``."""
    return 0o666 & ~_umask()


def _dir_mode() -> int:
    return 0o777 & ~_umask()


# --------------------------------------------------------------------------- single files
def atomic_write_bytes(path, data: bytes):
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename).

    The temporary file is locked (``flock``) while written, so that :func:`clean_partial` can tell
    a killed writer's leftover from a live write.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=folder)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), file_mode())  # mkstemp makes 0600 whatever the umask
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str):
    atomic_write_bytes(path, text.encode("utf-8"))


def arrays_bytes(arrays: dict) -> bytes:
    """The uncompressed .npz bytes of a dict of arrays. Object arrays are refused."""
    for k, v in arrays.items():
        if np.asarray(v).dtype == object:
            raise TypeError(f"array {k!r} has dtype object; results must be pickle-free")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save_arrays(path, arrays: dict):
    """Save a dict of numpy arrays as an uncompressed .npz, atomically. Object arrays are refused."""
    atomic_write_bytes(path, arrays_bytes(arrays))


def load_arrays(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot serialise {type(o).__name__}")


def json_bytes(obj) -> bytes:
    """JSON text of ``obj`` (non-finite floats become null: JSON has no NaN)."""
    return (json.dumps(_finite(obj), indent=2, default=_default) + "\n").encode("utf-8")


def save_json(path, obj):
    """Write JSON atomically; non-finite floats become null (JSON has no NaN)."""
    atomic_write_bytes(path, json_bytes(obj))


def _finite(o):
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, np.floating):
        return _finite(float(o))
    return o


def load_json(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


# --------------------------------------------------------------------------- leftovers of killed writers
def _unlocked(path) -> bool:
    """True when no live process holds an flock on ``path`` (a killed holder's lock is released)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def clean_partial(folder) -> list:
    """Remove the ``.tmp-*`` files that killed writers left in ``folder``; returns their names."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for f in names:
        p = os.path.join(folder, f)
        if f.startswith(".tmp-") and os.path.isfile(p) and _unlocked(p):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
                removed.append(f)
    return removed


def _staging_prefix(out):
    return "." + os.path.basename(os.path.abspath(out)) + ".tmp-"


def _old_prefix(out):
    return "." + os.path.basename(os.path.abspath(out)) + ".old-"


def recover_run_dir(out) -> list:
    """Repair what a killed :func:`write_run` left beside ``out``; returns notices.

    * ``out`` missing but a whole old run in ``.<name>.old-*`` (a kill between the two renames of
      the fallback swap): the old run is put back.
    * staging directories ``.<name>.tmp-*`` no live writer holds: removed (a kill before the swap
      leaves the new run unpublished; after it, the old run waiting for removal).
    * ``.tmp-*`` files in ``out``: removed (:func:`clean_partial`).
    """
    out = os.path.abspath(os.fspath(out))
    parent = os.path.dirname(out)
    notes = []
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return notes
    if not os.path.exists(out):
        for f in names:
            p = os.path.join(parent, f)
            if f.startswith(_old_prefix(out)) and _unlocked(p) and not verify_run(p):
                os.rename(p, out)
                notes.append(f"restored the previous run of {out} from {f} (an --overwrite was killed)")
                break
    for f in names:
        p = os.path.join(parent, f)
        if (f.startswith(_staging_prefix(out)) or f.startswith(_old_prefix(out))) and os.path.isdir(p) \
                and _unlocked(p):
            shutil.rmtree(p, ignore_errors=True)
            notes.append(f"removed {f}, left by a killed run")
    if os.path.isdir(out):
        for f in clean_partial(out):
            notes.append(f"removed {f} in {out}, left by a killed run")
    return notes


# --------------------------------------------------------------------------- run directories
def _digest(data: bytes) -> dict:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _exchange(a, b) -> bool:
    """Atomically swap paths ``a`` and ``b`` (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), b)


def _fsync_dir(path):
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_files(folder, payload, summary, phase):
    """config.toml, result.npz, then summary.json (with their checksums) into ``folder``."""
    summary = dict(summary)
    summary["files"] = {name: _digest(data) for name, data in payload.items()}
    for name, data in payload.items():
        atomic_write_bytes(os.path.join(folder, name), data)
        if name == "result.npz":
            _test_kill(phase)
    atomic_write_bytes(os.path.join(folder, "summary.json"), json_bytes(summary))
    return summary


def write_run(out, config_text: str, arrays: dict, summary: dict, carry=()) -> dict:
    """Write a run directory; returns the summary as written (with ``files``: sizes and sha256).

    Where ``out`` holds no finished run, the files are written in place (each atomically,
    ``summary.json`` last). Where it does, the new run is written whole into a staging directory
    beside it and swapped in atomically (module docstring), then the old run is removed.
    ``carry``: folders of ``out`` that belong to the new run (its checkpoint, written there while it
    computed): they are linked into the staging directory, so the swap publishes them with it.
    """
    out = os.path.realpath(os.fspath(out))  # a symlinked --out: swap at the real location
    payload = {"config.toml": config_text.encode("utf-8"), "result.npz": arrays_bytes(arrays)}
    recover_run_dir(out)
    if not os.path.isfile(os.path.join(out, "summary.json")):
        os.makedirs(out, exist_ok=True)
        return _write_files(out, payload, summary, "in-place-result")
    parent = os.path.dirname(out)
    stage = tempfile.mkdtemp(prefix=_staging_prefix(out), dir=parent)
    lock = os.open(stage, os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # recover_run_dir of another process leaves it alone
        try:
            written = _write_files(stage, payload, summary, "staged-result")
            for name in carry:
                if os.path.isdir(os.path.join(out, name)):
                    _link_tree(os.path.join(out, name), os.path.join(stage, name))
            os.chmod(stage, _dir_mode())  # mkdtemp makes 0700
            _fsync_dir(stage)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        _test_kill("staged")
        if not _exchange(stage, out):
            # two renames; a kill between them leaves out missing and the old run whole in
            # .<name>.old-*, which recover_run_dir puts back
            old = tempfile.mkdtemp(prefix=_old_prefix(out), dir=parent)
            os.rename(out, old)  # replaces the empty directory
            os.rename(stage, out)
            stage = old
        _fsync_dir(parent)
        _test_kill("swapped")
        shutil.rmtree(stage, ignore_errors=True)  # now the old run
    finally:
        os.close(lock)
    return written


def _link_tree(src, dst):
    """``dst`` a copy of the folder ``src`` made of hard links (copies where links are impossible)."""
    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link,
                    ignore=lambda d, names: [n for n in names if n.startswith(".tmp-")])


def verify_run(out, deep: bool = True) -> list:
    """Problems that make ``out`` not a whole finished run ([] when it is one).

    Reads ``summary.json`` and checks ``config.toml`` and ``result.npz`` against the sizes and
    sha256 it records (``deep=False``: sizes only, no reading). Runs written before checksums were
    recorded are checked by reading every array of ``result.npz`` (zip CRCs).
    """
    out = os.fspath(out)
    summ = os.path.join(out, "summary.json")
    if not os.path.isfile(summ):
        return [f"{out} holds no finished run (no summary.json)"]
    try:
        summary = load_json(summ)
    except (OSError, ValueError) as e:
        return [f"{summ} is unreadable ({type(e).__name__}: {e})"]
    if not isinstance(summary, dict):
        return [f"{summ} is not a run summary (a JSON object)"]
    files = summary.get("files")
    problems = []
    if isinstance(files, dict):
        for name, want in files.items():
            p = os.path.join(out, name)
            try:
                size = os.path.getsize(p)
            except OSError:
                problems.append(f"{p} is missing")
                continue
            if not isinstance(want, dict) or size != want.get("bytes"):
                problems.append(f"{p} has {size} bytes, the summary records {want.get('bytes') if isinstance(want, dict) else want} (truncated or replaced)")
                continue
            if deep:
                h = hashlib.sha256()
                with open(p, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
                if h.hexdigest() != want.get("sha256"):
                    problems.append(f"{p} does not match the sha256 its summary records (altered or corrupted)")
        return problems
    try:  # written before checksums: the zip's own CRCs
        load_arrays(os.path.join(out, "result.npz"))
    except Exception as e:  # noqa: BLE001 - any unreadable result is a problem to report
        problems.append(f"{os.path.join(out, 'result.npz')} is unreadable ({type(e).__name__}: {e})")
    return problems


# --------------------------------------------------------------------------- output location
class OutputLocationError(OSError):
    """The output location cannot take the run's files (unwritable, not a directory, too little space)."""


def _nearest_existing(path):
    p = os.path.abspath(path)
    while not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def check_output_location(out, need_bytes: float, what="--out"):
    """Refuse, before any computation, an output location that cannot take ``need_bytes``.

    ``out`` may not exist yet: its nearest existing ancestor must be a directory in which a file
    can be created (probed with a temporary file, removed at once: permissions, read-only mounts
    and ACLs all answer) and whose file system has ``need_bytes`` free. Creates nothing.
    """
    out = os.path.abspath(os.fspath(out))
    if os.path.exists(out) and not os.path.isdir(out):
        raise OutputLocationError(f"{what} {out} exists and is not a directory; choose another {what}")
    base = _nearest_existing(out)
    if not os.path.isdir(base):
        raise OutputLocationError(f"{what} {out}: {base} is a file, not a directory; choose another {what}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".tmp-probe-", dir=base)
    except OSError as e:
        raise OutputLocationError(f"{what} {out}: cannot write in {base} ({e.strerror}); choose a writable "
                                  f"location") from None
    os.close(fd)
    os.unlink(probe)
    st = os.statvfs(base)
    free = st.f_bavail * st.f_frsize
    if free < need_bytes:
        raise OutputLocationError(f"{what} {out}: {free / 1e9:.3g} GB free on its file system, the run's files "
                                  f"need about {need_bytes / 1e9:.3g} GB; free space or choose another {what}")
