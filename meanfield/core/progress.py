"""Feedback on every long step: one progress module for the time loop, the scan and the DMFT iterations.

A *mode* says how a running computation reports itself (``--progress`` on the command line,
``progress=`` in :func:`meanfield.run`):

* ``"bar"``  — a ``tqdm.auto`` bar (a terminal bar, or a widget in a Jupyter notebook);
* ``"text"`` — a plain line on stderr every ``interval`` seconds (default 10 s, environment
  ``MEANFIELD_PROGRESS_INTERVAL``) and one line when a reported task ends, for logs, batch jobs and
  pipes, where a bar's carriage returns turn into megabytes of noise; tasks shorter than one
  interval print nothing;
* ``"none"`` — silence;
* ``"auto"`` (the default everywhere) — ``bar`` where a human watches (stderr is a terminal, or the
  code runs in a notebook kernel), ``text`` elsewhere.

``True``/``False`` are accepted for ``"auto"``/``"none"`` (the API before this module took a bool).

Every reporter has the same small interface — ``update(n)``, ``set(**fields)`` (the trailing
key = value fields: residual, stage; a field named ``note`` is shown as its bare value), ``write(msg)``, ``close()`` — so the time loop
(:mod:`meanfield.march`), the scan (:mod:`meanfield.scan.runner`) and the DMFT adapter
(:func:`iteration_callback`, fed by the solver's per-iteration hook) never look at the mode.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

__all__ = ["MODES", "resolve", "reporter", "iteration_callback", "Reporter"]

MODES = ("auto", "bar", "text", "none")


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (where stderr is not a terminal but a human watches the cell)."""
    ipy = sys.modules.get("IPython")
    if ipy is None or "ipykernel" not in sys.modules:
        return False
    try:
        shell = ipy.get_ipython()
    except Exception:  # noqa: BLE001 - any failure means: not a notebook
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def resolve(mode, stream=None) -> str:
    """The concrete mode (``bar``, ``text`` or ``none``) of ``mode`` for output on ``stream``.

    Raises ``ValueError`` naming the allowed values for anything else.
    """
    if mode is True or mode is None:
        mode = "auto"
    elif mode is False:
        mode = "none"
    if mode not in MODES:
        raise ValueError(f"progress = {mode!r} is not a progress mode; choose one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    stream = sys.stderr if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return "bar" if tty or _in_notebook() else "text"


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("MEANFIELD_PROGRESS_INTERVAL", "10")))
    except ValueError:
        return 10.0


def _fields_text(fields: dict) -> str:
    return ", ".join(str(v) if k == "note" else f"{k}={v}" for k, v in fields.items() if v != "")


def _fmt_s(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


class Reporter:
    """Silent reporter (mode ``none``); the base of the others."""

    disable = True

    def __init__(self, total=None, desc="", unit="step", initial=0):
        self.total, self.desc, self.unit, self.n = total, desc, unit, int(initial)
        self.fields: dict = {}

    def update(self, n: int = 1):
        self.n += n

    def set(self, **fields):
        self.fields.update(fields)

    def write(self, msg: str):
        """A message that must reach the user (not a progress line): printed on stderr."""
        print(msg, file=sys.stderr, flush=True)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Text(Reporter):
    """One plain line every ``interval`` seconds, and a last one if any was printed or the task
    outlasted one interval: ``desc: 1200/5000 step (24 %), 31 s elapsed, ~1.7 min left, k=v``."""

    disable = False

    def __init__(self, total=None, desc="", unit="step", initial=0, stream=None, interval=None):
        super().__init__(total, desc, unit, initial)
        self.stream = sys.stderr if stream is None else stream
        self.interval = _interval() if interval is None else float(interval)
        self.t0 = time.perf_counter()
        self.n0 = self.n
        self.last = self.t0
        self.printed = 0

    def line(self, final=False) -> str:
        el = time.perf_counter() - self.t0
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            pct = 100.0 * self.n / self.total
            s = f"{head}{self.n}/{self.total} {self.unit} ({pct:.0f} %), {_fmt_s(el)} elapsed"
            done = self.n - self.n0
            # no guess from the first few steps (they carry JIT compilation and warm-up)
            if not final and done >= max(2, 0.02 * self.total) and self.n < self.total:
                s += f", ~{_fmt_s(el / done * (self.total - self.n))} left"
        else:
            s = f"{head}{self.n} {self.unit}, {_fmt_s(el)} elapsed"
        if final:
            s += ", done" if (not self.total or self.n >= self.total) else ", stopped"
        if _fields_text(self.fields):
            s += ", " + _fields_text(self.fields)
        return s

    def _emit(self, final=False):
        print(self.line(final), file=self.stream, flush=True)
        self.printed += 1
        self.last = time.perf_counter()

    def update(self, n: int = 1):
        self.n += n
        if time.perf_counter() - self.last >= self.interval:
            self._emit()

    def set(self, **fields):
        self.fields.update(fields)

    def write(self, msg: str):
        print(msg, file=self.stream, flush=True)

    def close(self):
        if self.printed or time.perf_counter() - self.t0 >= self.interval:
            self._emit(final=True)


class _Bar(Reporter):
    """A ``tqdm.auto`` bar (terminal or notebook widget)."""

    disable = False

    def __init__(self, total=None, desc="", unit="step", initial=0, stream=None, leave=False):
        super().__init__(total, desc, unit, initial)
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave, dynamic_ncols=True,
                        mininterval=0.5, smoothing=0.1, file=stream)

    def update(self, n: int = 1):
        self.n += n
        self.bar.update(n)

    def set(self, **fields):
        self.fields.update(fields)
        self.bar.set_postfix_str(_fields_text(self.fields), refresh=False)

    def write(self, msg: str):
        self.bar.write(msg, file=sys.stderr)

    def close(self):
        self.bar.close()


def reporter(total, desc, mode="auto", unit="step", initial=0, stream=None, leave=False, interval=None) -> Reporter:
    """A progress reporter for ``total`` units (None: unknown) in ``mode`` (see the module docstring)."""
    m = resolve(mode, stream)
    if m == "bar":
        return _Bar(total, desc, unit, initial, stream=stream, leave=leave)
    if m == "text":
        return _Text(total, desc, unit, initial, stream=stream, interval=interval)
    return Reporter(total, desc, unit, initial)


def _as_dict(info) -> dict:
    if isinstance(info, dict):
        return info
    if hasattr(info, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(info)
    return dict(vars(info))


def iteration_callback(desc, mode="auto", stream=None, interval=None):
    """A callback for a fixed-point solver's per-iteration hook, and its reporter.

    The callback is called once per iteration (and possibly once before the first, with
    ``iteration = 0``, which counts nothing) with a mapping or an object (a dataclass such as the
    DMFT solver's progress record) holding any of ``residual``, ``stage`` and ``n_stages`` (the
    continuation stage), ``horizon`` (its horizon T), ``phase`` (e.g. an error batch), ``beta``
    (damping) and ``remaining`` (the solver's guess of the seconds left in the phase). It counts the
    iterations and shows the residual, the stage and the elapsed time (the reporter's own clock).
    Returns ``(callback, reporter)``; close the reporter when the solve ends.
    """
    rep = reporter(None, desc, mode, unit="it", stream=stream, interval=interval)

    def callback(info):
        d = _as_dict(info)
        start = d.get("iteration") == 0  # a "starting" record (no iteration done yet)
        fields = {"phase": d["phase"] if d.get("phase") not in (None, "", "solve") else ""}  # first, or blank
        if d.get("stage") is not None:
            st = f"{d['stage']}/{d['n_stages']}" if d.get("n_stages") else f"{d['stage']}"
            fields["stage"] = st + (f" (T={d['horizon']})" if d.get("horizon") is not None else "")
        if d.get("residual") is not None and np.isfinite(float(d["residual"])):
            fields["residual"] = f"{float(d['residual']):.2e}"
        if d.get("beta") is not None:
            fields["beta"] = f"{float(d['beta']):g}"
        if d.get("remaining") is not None:
            fields["left"] = f"~{_fmt_s(float(d['remaining']))}"
        rep.set(**fields)
        rep.update(0 if start else 1)

    return callback, rep
