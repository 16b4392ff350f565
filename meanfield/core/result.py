r"""The result of a run: arrays with named dimensions, the summary, the config and provenance.

One vocabulary for every model family. Limit-side arrays end in ``_mf`` (the mean-field /
infinite-width side: the particle flow, the DMFT, the NTK), network-side arrays in ``_nn``; the
same names mean the same things in two-layer and deep runs:

* ``risk_mf`` / ``risk_nn`` — the primary risk of each side (two-layer: the population risk when
  closed-form, else the test risk; deep: the training loss), with ``risk_*_train`` and
  ``risk_*_test`` beside it;
* ``f_mf`` / ``f_nn`` — the function at the recorded points.

Every array's dimensions are declared (:data:`DIMS`; arrays whose names depend on the run, such as
``neurons_nn_N64``, by pattern) and stored in ``summary.json`` (``"dims"``), so a result written by
a model the loader has never heard of still opens with its dimensions named.

Deep runs used other names before; they stay readable as aliases for one release
(:data:`ALIASES`): ``result["loss_inf"]`` returns ``risk_mf_train``, and a directory written with the
old names opens under the new ones.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["Result", "ResultArrays", "load", "DIMS", "ALIASES", "dims_of", "MEANING"]

# name -> (dims, meaning). Dimension names: time, width, seed, point (points where f is recorded),
# input (input coordinates), snapshot, particle (limit particles), neuron_N<N> (neurons of the
# width-N networks), column (a particle's named columns), teacher, layer, kernel_point(_2)
# (points of the recorded kernels), train_point, test_point, iteration.
_DECL = {
    "t": (("time",), "mean-field recording times (the limit's step grid)"),
    "t_nn": (("time",), "the networks' recording times (step * lr)"),
    "widths": (("width",), "widths N of the finite networks"),
    "coupling_factor": (("width",), "factor by which coupling to the limit's M particles shrinks each width's "
                                    "seed variance, 1 - N/M (1: independent draws)"),
    "x_eval": (("point", "input"), "points where f is recorded"),
    "risk_mf": (("time",), "the limit's primary risk (two-layer: population when closed-form, else test; "
                           "deep: training loss)"),
    "risk_mf_train": (("time",), "the limit's risk on the training set (NaN if none)"),
    "risk_mf_test": (("time",), "the limit's risk on the test sample / test points (NaN if none)"),
    "risk_mf_err": (("time",), "Monte Carlo standard error of risk_mf_train (dmft; 0 for exact methods)"),
    "f_mf": (("time", "point"), "the limit's output at the recorded points"),
    "f_mf_err": (("time", "point"), "Monte Carlo standard error of f_mf (dmft; 0 for exact methods)"),
    "risk_nn": (("width", "seed", "time"), "each network's primary risk, same metric as risk_mf"),
    "risk_nn_pop": (("width", "seed", "time"), "each network's population risk (NaN without closed form)"),
    "risk_nn_train": (("width", "seed", "time"), "each network's training-set risk (NaN without one)"),
    "risk_nn_test": (("width", "seed", "time"), "each network's test risk"),
    "f_nn": (("width", "seed", "time", "point"), "each network's output at the recorded points"),
    "energy_mf": (("time",), "the limit's regularised energy R/alpha^2 + (lambda/2) E|theta|^2 (with [dynamics])"),
    "energy_nn": (("width", "seed", "time"), "each network's regularised energy (with [dynamics])"),
    "entropy_mf": (("time",), "k-nearest-neighbour estimate of the limit particles' entropy H (temperature > 0; "
                              "NaN where unreliable)"),
    "free_energy_mf": (("time",), "the limit's free energy E - tau H (temperature > 0; NaN where H is unreliable)"),
    "fluct_nvar": (("time", "output"), "predicted N Var of each recorded output (fluctuations.predict; independent "
                                        "initialisations; NaN at times not predicted)"),
    "fluct_nvar_se": (("time", "output"), "Monte Carlo standard error of fluct_nvar (finite reference sample)"),
    "fluct_naive": (("time", "output"), "naive N Var: the output's own first variation at the transported units"),
    "fluct_ncov": (("time", "output", "output_2"), "predicted N Cov between outputs at each recording time"),
    "fluct_predicted": (("time",), "whether the prediction was made at this recording time"),
    "fluct_nvar_replicas": (("time", "output"), "forward-replica estimate of N Var (relative error sqrt(2/R))"),
    "fluct_nvar_nn": (("width", "time", "output"), "predicted N Var for each width's initialisation (coupled: "
                                                    "times the finite-population factor)"),
    "snap_t": (("snapshot",), "snapshot times"),
    "masses_mf": (("snapshot", "particle"), "the limit's particle masses at snap_t (Wasserstein-Fisher-Rao)"),
    "masses_mf_final": (("particle",), "the limit's particle masses at the end"),
    "particles_mf": (("snapshot", "particle", "column"), "the limit's particles at snap_t"),
    "particles_mf_final": (("particle", "column"), "the limit's last (finite) state"),
    "teacher_w": (("teacher", "input"), "teacher neurons"),
    "teacher_a": (("teacher",), "teacher output weights"),
    "depth": ((), "number of hidden layers L"),
    "x_train": (("train_point", "input"), "training inputs"),
    "y_train": (("train_point",), "training targets"),
    "x_test": (("test_point", "input"), "test inputs"),
    "y_test": (("test_point",), "test targets"),
    "Phi0": (("kernel_point", "kernel_point_2"), "input kernel X X^T / D"),
    "Phi_mf": (("time", "layer", "kernel_point", "kernel_point_2"), "the limit's feature kernels Phi^l(t, t)"),
    "G_mf": (("time", "layer", "kernel_point", "kernel_point_2"), "the limit's gradient kernels G^l(t, t)"),
    "K_mf": (("time", "kernel_point", "kernel_point_2"), "the limit's NTK"),
    "align_mf": (("time",), "kernel-target alignment of K_mf (training block)"),
    "dmft_residuals": (("iteration",), "fixed-point residual per iteration (dmft, dmft_linear)"),
    "align_nn": (("width", "seed", "time"), "alignment of every network's NTK"),
    "Phi_nn": (("width", "time", "layer", "kernel_point", "kernel_point_2"), "seed-mean feature kernels"),
    "G_nn": (("width", "time", "layer", "kernel_point", "kernel_point_2"), "seed-mean gradient kernels"),
    "K_nn": (("width", "time", "kernel_point", "kernel_point_2"), "seed-mean NTK"),
    "K_dev_nn": (("width", "seed", "time"), "||K_s(t) - K_mf(t)||_F / ||K_mf(t)||_F"),
}
#: declared dimensions of every fixed-name array
DIMS = {k: v[0] for k, v in _DECL.items()}
#: what each array means
MEANING = {k: v[1] for k, v in _DECL.items()}
# per-width arrays: name pattern -> dims (N substituted)
_PATTERNS = (
    (re.compile(r"neurons_nn_N(\d+)$"), ("snapshot", "seed", "neuron_N{N}", "column"),
     "the width-N networks' neurons at snap_t, every seed"),
    (re.compile(r"neurons_nn_final_N(\d+)$"), ("seed", "neuron_N{N}", "column"),
     "the width-N networks' last kept state (the final one, or the last finite/accepted one of a "
     "diverged run: summary 'diverged' says its step)"),
    (re.compile(r"masses_nn_N(\d+)$"), ("snapshot", "seed", "neuron_N{N}"),
     "the width-N networks' neuron masses at snap_t (Wasserstein-Fisher-Rao)"),
    (re.compile(r"coupling_index_N(\d+)$"), ("seed", "neuron_N{N}"),
     "the limit particle each neuron of each width-N network started from"),
)

#: old key -> canonical key (deep runs before the one vocabulary); readable for one release
ALIASES = {
    "loss_inf": "risk_mf_train", "loss_inf_test": "risk_mf_test", "loss_inf_err": "risk_mf_err",
    "f_inf": "f_mf", "f_inf_err": "f_mf_err", "Phi_inf": "Phi_mf", "G_inf": "G_mf", "K_inf": "K_mf",
    "align_inf": "align_mf", "loss_nn": "risk_nn_train", "loss_nn_test": "risk_nn_test",
}


def dims_of(name: str, ndim: int | None = None):
    """Declared dimension names of array ``name`` (None when undeclared)."""
    name = ALIASES.get(name, name)
    if name in DIMS:
        return DIMS[name]
    for pat, dims, _ in _PATTERNS:
        m = pat.match(name)
        if m:
            return tuple(d.format(N=m.group(1)) for d in dims)
    return None


class ResultArrays(dict):
    """The arrays of a result: a dict under canonical names that also answers to the old aliases."""

    def __missing__(self, key):
        canon = ALIASES.get(key)
        if canon is not None and dict.__contains__(self, canon):
            return dict.__getitem__(self, canon)
        raise KeyError(key)

    def __contains__(self, key):
        return dict.__contains__(self, key) or (key in ALIASES and dict.__contains__(self, ALIASES[key]))

    def get(self, key, default=None):
        return self[key] if key in self else default


def canonical(arrays: Mapping) -> ResultArrays:
    """``arrays`` under canonical names (old names renamed, where the canonical one is absent)."""
    out = ResultArrays()
    for k, v in arrays.items():
        c = ALIASES.get(k, k)
        if not dict.__contains__(out, c):
            out[c] = v
    return out


@dataclass
class Result:
    """One run: ``arrays`` (the content of ``result.npz``), ``summary`` and the resolved ``config``.

    ``result[key]`` reads an array (old deep names too, see :data:`ALIASES`); ``keys()`` lists
    them; :meth:`to_xarray` gives a labelled ``xarray.Dataset`` (extra ``[xarray]``).
    """

    arrays: dict
    summary: dict
    config: object

    def __post_init__(self):
        if not isinstance(self.arrays, ResultArrays):
            self.arrays = canonical(self.arrays)

    def __getitem__(self, key):
        return self.arrays[key]

    def __contains__(self, key):
        return key in self.arrays

    def keys(self):
        return self.arrays.keys()

    @property
    def status(self) -> str:
        return self.summary["status"]

    @property
    def kind(self) -> str:
        """The model family of the run (``two_layer``, ``deep``, or a registered model kind)."""
        return self.summary.get("kind", "two_layer")

    def dims(self, key):
        """Dimension names of array ``key``: as stored with the result, else as declared."""
        key = ALIASES.get(key, key)
        stored = self.summary.get("dims", {}).get(key)
        return tuple(stored) if stored is not None else dims_of(key)

    def __repr__(self):
        shapes = ", ".join(f"{k}{tuple(np.shape(v))}" for k, v in list(self.arrays.items())[:8])
        more = f", … {len(self.arrays) - 8} more" if len(self.arrays) > 8 else ""
        return (f"<meanfield.Result kind={self.kind!r} status={self.status!r} "
                f"arrays: {shapes}{more}>")

    def save(self, out, carry=()):
        """Write ``config.toml``, ``result.npz`` then ``summary.json`` into ``out`` atomically.

        A finished run already in ``out`` is replaced atomically as a whole directory
        (:func:`meanfield.store.write_run`): a kill at any point leaves the old run whole or the new
        run whole, never a mix. The summary records the size and sha256 of the other files
        (``summary["files"]``) so that :func:`meanfield.store.verify_run` can tell a damaged run.
        ``carry``: folders of ``out`` that belong to this run (its checkpoint), kept through the swap.
        """
        from .. import config as _config
        from .. import store

        self.summary = store.write_run(out, _config.to_toml(self.config), dict(self.arrays), self.summary,
                                       carry=carry)

    def to_xarray(self):
        """A labelled ``xarray.Dataset``: every array with its named dimensions and meaning,
        coordinates ``time`` (= t), ``width``, ``column`` (the particle columns' names), and the
        resolved config (TOML text), summary and provenance as attributes (JSON text)."""
        try:
            import xarray as xr
        except ImportError:  # pragma: no cover - the message is the point
            raise ImportError("to_xarray needs xarray: pip install 'meanfield-dynamics[xarray]' "
                              "(or pip install xarray)") from None
        from .. import config as _config

        data = {}
        for k, v in self.arrays.items():
            v = np.asarray(v)
            dims = self.dims(k)
            if dims is None or len(dims) != v.ndim:
                dims = tuple(f"{k}_dim{i}" for i in range(v.ndim))
            data[k] = xr.Variable(dims, v, attrs={"meaning": MEANING.get(k, "")})
        coords = {}
        if "t" in self.arrays:
            coords["time"] = ("time", np.asarray(self.arrays["t"]))
        if "widths" in self.arrays:
            coords["width"] = ("width", np.asarray(self.arrays["widths"]))
        cols = self.summary.get("columns")
        if cols:
            coords["column"] = ("column", np.asarray(cols, dtype=str))
        attrs = {"kind": self.kind, "status": self.status,
                 "config_toml": _config.to_toml(self.config) if self.config is not None else "",
                 "summary_json": json.dumps(self.summary, default=str),
                 "provenance_json": json.dumps(self.summary.get("provenance", {}), default=str)}
        return xr.Dataset(data, coords=coords, attrs=attrs)


def load(out) -> Result:
    """Load a run directory written by :func:`meanfield.run_to_dir` (refuses an incomplete one)."""
    from .. import config as _config
    from .. import store

    summ = os.path.join(out, "summary.json")
    if not os.path.isfile(summ):
        raise FileNotFoundError(f"{out} holds no finished run (no summary.json)")
    problems = store.verify_run(out)
    if problems:
        raise ValueError(f"{out} is damaged: " + "; ".join(problems) + ". Run it again (meanfield run --overwrite)")
    return Result(store.load_arrays(os.path.join(out, "result.npz")), store.load_json(summ),
                  _config.load(os.path.join(out, "config.toml")))
