r"""Coordinate check: per-layer activation and update sizes over the first GD steps against width.

The check of Yang & Hu (2021, Tensor Programs IV/V; the ``get_coord_data``/``plot_coord_data`` of the
``mup`` package are the practitioners' version): train networks of several widths for a few steps and
record, per layer, the typical coordinate size of the pre-activations and of their change since
initialisation. A parametrisation with a feature-learning limit keeps both width-independent; one that
does not shows them growing (blow-up) or shrinking (lazy) with N.

For every parametrisation p, width N, step t = 0..T and layer ℓ = 1..L (plus the output f, index L):

.. math::
    \text{act}[p,N,t,\ell] = \Big\langle\frac{1}{PN}\sum_{\mu,i}|h^\ell_{\mu i}(t)|\Big\rangle_{\text{seeds}},\qquad
    \text{upd}[p,N,t,\ell] = \Big\langle\frac{1}{PN}\sum_{\mu,i}|h^\ell_{\mu i}(t)-h^\ell_{\mu i}(0)|\Big\rangle_{\text{seeds}}

(``mup`` calls the mean absolute coordinate "l1"), and the fitted width exponents
:math:`\partial\log(\cdot)/\partial\log N` by least squares over the widths. Training is full-batch GD (or Adam:
``optimizer = 'adam'``, ``train.optimizer``) at step ``lr`` on the given points, every parametrisation at the same ``lr`` (that is the point: muP
transfers one step size across widths; the standard parametrisation does not).

Expected (docs/residual.md §1.1, measured in tests/test_coordcheck.py): muP exponents ≈ 0 for every layer
and step; NTK parametrisation: updates ∝ N^(−1/2) (lazy); standard: hidden updates ∝ N^(+1/2) at the first
step, growing further as the output blows up.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from .network import DeepNet
from .parametrisation import make_parametrisation
from .train import make_step

__all__ = ["CoordData", "coord_data", "coord_table", "plot_coord_data", "coordcheck_config"]


@dataclass
class CoordData:
    """Result of :func:`coord_data`.

    Attributes
    ----------
    widths : (W,) ints;  steps : int T;  depth : int L
    act, upd : dict parametrisation name -> (W, T+1, L+1) seed means (layers h^1..h^L, then f)
    act_se, upd_se : same shapes, standard errors over seeds
    diverged : dict name -> list of widths whose networks left the finite numbers
    """

    widths: np.ndarray
    steps: int
    depth: int
    act: dict = field(default_factory=dict)
    upd: dict = field(default_factory=dict)
    act_se: dict = field(default_factory=dict)
    upd_se: dict = field(default_factory=dict)
    diverged: dict = field(default_factory=dict)

    def layer_names(self):
        return [f"h{l}" for l in range(1, self.depth + 1)] + ["f"]

    def exponent(self, name: str, quantity: str = "upd", step: int | None = None) -> np.ndarray:
        """Fitted width exponents (L+1,) of ``quantity`` ('upd' or 'act') at ``step`` (default: the last)."""
        a = (self.upd if quantity == "upd" else self.act)[name]
        t = self.steps if step is None else step
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.log(a[:, t, :])
        x = np.log(self.widths.astype(float))
        out = np.full(a.shape[-1], np.nan)
        for l in range(a.shape[-1]):
            ok = np.isfinite(y[:, l])
            if ok.sum() >= 2:
                out[l] = np.polyfit(x[ok], y[ok, l], 1)[0]
        return out

    def arrays(self) -> dict:
        """Flat arrays for an ``.npz`` (keys ``act_<name>``, ``upd_<name>``, their ``_se``, ``widths``)."""
        out = {"widths": self.widths, "steps": np.int64(self.steps), "depth": np.int64(self.depth)}
        for n in self.act:
            out.update({f"act_{n}": self.act[n], f"upd_{n}": self.upd[n], f"act_se_{n}": self.act_se[n],
                        f"upd_se_{n}": self.upd_se[n]})
        return out


def coord_data(activation, X, y, depth, widths, parametrisations, lr, steps=4, seeds=4, seed=0,
               backend="numpy", optimizer="sgd", adam=None) -> CoordData:
    """Train ``seeds`` networks per width and parametrisation by GD for ``steps`` steps; record the sizes.

    Parameters
    ----------
    activation : registered activation;  X : (P, D), y : (P,) training points;  depth : L
    widths : iterable of ints
    parametrisations : dict name -> parametrisation object (:mod:`meanfield.deep.parametrisation`)
    lr : GD step (the same for every width and parametrisation)
    steps : T;  seeds : networks per width;  seed : root of the weight streams
    backend : 'numpy' or 'numba' (the fused step)
    optimizer : 'sgd' (plain GD steps) or 'adam' (each parametrisation's Adam rates, :mod:`meanfield.deep.optim`)
    adam : :class:`meanfield.deep.optim.AdamSpec` or None
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    D = X.shape[1]
    widths = np.asarray(sorted(int(w) for w in widths))
    out = CoordData(widths=widths, steps=int(steps), depth=int(depth))
    for name, param in parametrisations.items():
        shape = (len(widths), steps + 1, depth + 1)
        act, upd = np.full(shape, np.nan), np.full(shape, np.nan)
        act_se, upd_se = np.full(shape, np.nan), np.full(shape, np.nan)
        out.diverged[name] = []
        for wi, N in enumerate(widths):
            net = DeepNet(activation, D, N, depth, param, backend=backend)
            rngs = [[np.random.default_rng([seed, N, s, l]) for l in range(depth + 1)] for s in range(seeds)]
            theta = net.init(rngs)
            step = make_step(net, "gd", lr, train=(X, y), optimizer=optimizer, adam=adam)
            h0 = None
            for t in range(steps + 1):
                hs = net.preactivations(theta, X) + [net.output(theta, X)[..., None]]
                if h0 is None:
                    h0 = [h.copy() for h in hs]
                if not all(np.all(np.isfinite(h)) for h in hs):
                    out.diverged[name].append(int(N))
                    break
                for l, (h, g) in enumerate(zip(hs, h0)):
                    a = np.mean(np.abs(h), axis=(1, 2))
                    u = np.mean(np.abs(h - g), axis=(1, 2))
                    act[wi, t, l], upd[wi, t, l] = a.mean(), u.mean()
                    if seeds > 1:
                        act_se[wi, t, l] = a.std(ddof=1) / math.sqrt(seeds)
                        upd_se[wi, t, l] = u.std(ddof=1) / math.sqrt(seeds)
                if t < steps:
                    with np.errstate(over="ignore", invalid="ignore"):
                        theta = step(theta, t)
        out.act[name], out.upd[name], out.act_se[name], out.upd_se[name] = act, upd, act_se, upd_se
    return out


def coord_table(cd: CoordData, quantity: str = "upd", step: int | None = None) -> str:
    """A text table: one block per parametrisation, rows = layers, columns = widths, last column the exponent."""
    t = cd.steps if step is None else step
    lines = [f"mean |{'h(t) - h(0)' if quantity == 'upd' else 'h(t)'}| per coordinate at step {t} "
             f"(seed means); exponent = d log / d log N"]
    head = "  layer " + "".join(f"{'N=' + str(N):>11}" for N in cd.widths) + f"{'exponent':>11}"
    for name in (cd.upd if quantity == "upd" else cd.act):
        a = (cd.upd if quantity == "upd" else cd.act)[name]
        ex = cd.exponent(name, quantity, t)
        lines += [f"[{name}]" + (f"  diverged at N = {cd.diverged[name]}" if cd.diverged.get(name) else ""), head]
        for l, lname in enumerate(cd.layer_names()):
            lines.append(f"  {lname:<6}" + "".join(f"{v:>11.4g}" for v in a[:, t, l]) + f"{ex[l]:>+11.3f}")
    return "\n".join(lines)


def plot_coord_data(cd: CoordData, path: str, quantity: str = "upd"):
    """The familiar figure: one panel per (parametrisation, layer), size against width (log-log), one curve
    per step (``mup``'s ``plot_coord_data`` layout). Writes ``path`` (png)."""
    from ..viz import colors, save, style

    plt = style()
    names = list(cd.upd)
    L1 = cd.depth + 1
    fig, axes = plt.subplots(len(names), L1, figsize=(2.6 * L1, 2.3 * len(names)), squeeze=False, sharex=True)
    cols = colors(plt, cd.steps + 1)
    first = 1 if quantity == "upd" else 0
    for r, name in enumerate(names):
        a = (cd.upd if quantity == "upd" else cd.act)[name]
        for l, lname in enumerate(cd.layer_names()):
            ax = axes[r, l]
            for t in range(first, cd.steps + 1):
                ax.plot(cd.widths, a[:, t, l], "o-", color=cols[t], ms=3, label=f"t={t}")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{name}: {lname}", fontsize=9)
            if r == len(names) - 1:
                ax.set_xlabel("width N")
        axes[r, 0].set_ylabel("mean |Δh|" if quantity == "upd" else "mean |h|")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save(fig, path)  # the one save path: banner, readable log ticks
    plt.close(fig)
    return path


def coordcheck_config(cfg, parametrisations=None, steps=4, out=None, log=print) -> CoordData:
    """The coordinate check of a deep config: its task's training points, depth, activation, residual options,
    ``train.widths``, ``train.seeds`` (at least 2), ``train.lr``; ``parametrisations`` (names; default: the
    config's). Writes ``coordcheck.npz``, ``coordcheck.txt`` and ``coordcheck.png`` under ``out`` if given."""
    from ..tasks import make_task
    from .checks import gamma0_of
    from .wing import deep_points

    m = cfg.model
    names = list(parametrisations or [m.parametrisation])
    params = {n: make_parametrisation(n, gamma0_of(cfg), residual=m.residual, branch_exponent=m.branch_exponent,
                                      branch_scale=m.branch_scale) for n in names}
    X, y, _, _ = deep_points(cfg, make_task(cfg))
    backend = "numba" if cfg.run.backend in ("numba", "auto") and m.depth >= 2 else "numpy"
    from .wing import adam_spec_of

    cd = coord_data(m.activation, X, y, m.depth, cfg.train.widths, params, cfg.train.lr, steps=steps,
                    seeds=max(2, cfg.train.seeds), seed=cfg.run.seed, backend=backend,
                    optimizer=cfg.train.optimizer, adam=adam_spec_of(cfg))
    text = coord_table(cd, "act") + "\n\n" + coord_table(cd, "upd")
    log(text)
    if out:
        os.makedirs(out, exist_ok=True)
        np.savez(os.path.join(out, "coordcheck.npz"), **cd.arrays())
        with open(os.path.join(out, "coordcheck.txt"), "w") as fh:
            fh.write(text + "\n")
        plot_coord_data(cd, os.path.join(out, "coordcheck.png"))
        log(f"wrote {out}/coordcheck.npz, coordcheck.txt, coordcheck.png")
    return cd
