"""``meanfield init [two-layer|deep|scan] FILE``: an annotated starting config that validates and runs.

Each template is a small, commented TOML file sized to finish in seconds on a laptop (measured
times in the README, "Getting started"), meant to be edited: every key it sets says what it does,
and the keys it leaves out keep the defaults of the config reference (README, "Config reference").
Templates are a registry (:data:`TEMPLATES`), so a new one is one entry.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

__all__ = ["TEMPLATES", "Template", "write_template", "register"]


@dataclass(frozen=True)
class Template:
    """A starting file: a one-line description, its text and the command that runs it."""

    doc: str
    text: str
    command: str  # how to run it, with {file} and {stem} filled in


TWO_LAYER = """\
# A two-layer network of erf units learning a teacher, beside its mean-field (infinite-width) limit.
# Written by `meanfield init two-layer`; runs in about 10 s of CPU. Every key not set here keeps the
# default of the config reference (README, "Config reference"); `meanfield run FILE --set SECTION.KEY=VALUE`
# overrides one without editing.

[run]
name = "{stem}"          # output goes to runs/<name> unless --out is given
seed = 0                 # every random stream (teacher, particles, networks, SGD) is derived from it
backend = "numpy"        # at this size numpy (10 s CPU) beats numba's one-time kernel compile (20 s CPU on a
                         # fresh install); "auto" (numba, CUDA on a GPU machine) once you scale up

[task]
kind = "teacher_student" # Gaussian inputs x ~ N(0, I_d), labels y = f*(x) from a k-unit teacher
d = 10                   # input dimension
teacher_width = 2        # teacher units k (orthonormal teacher neurons need k <= d)

[model]
activation = "erf"       # erf means erf(z / sqrt 2); also linear, relu, tanh
alpha = 1.0              # output scale: 1 is mean field, large alpha the lazy (kernel) regime

[limit]
method = "particles"     # the mean-field limit as a particle flow (the two-layer method)
particles = 512          # particles M: the limit's own sampling error is ~ 1/sqrt(M)
expectation = "auto"     # closed-form Gaussian expectations where possible (erf/relu/linear), else Monte Carlo
integrator = "rk4"       # the flow's time integrator (euler, heun, rk4)
dt = 0.05                # the flow's step in mean-field time

[train]
algorithm = "online_sgd" # fresh minibatches every step; population_gd removes the SGD noise
widths = [16, 64, 256]   # finite widths N trained beside the limit
seeds = 4                # independent networks per width (error bars)
lr = 0.05                # step eta = mean-field time per step: curves are comparable at every width
batch = 32               # minibatch size B (SGD noise ~ eta / B, independent of N)

[time]
t_max = 5.0              # final mean-field time
records = 30             # recording times (log-spaced below), snapped to both step grids
spacing = "log"
snapshots = 12           # times at which particles and neurons are stored: the frames of clouds.gif
# ts = [0.0, 0.5, 1.0, 5.0]  # explicit recording times instead (multiples of dt and lr, <= t_max)

[eval]
n_test = 1000            # test sample of the test risks (risk.png plots the closed-form population risk)
# points = "points.npy"  # your own (n, d) evaluation points instead of sampled ones (numpy.save)
"""

DEEP = """\
# A deep (L = 2) muP network of tanh units against its infinite-width limit, the sampled DMFT.
# Written by `meanfield init deep`; runs in about 6 s on 2 cores. Every key not set here keeps the
# default of the config reference (README, "Config reference"); README "Which limit method?" says when
# to use dmft, dmft_linear, ntk or particles.

[run]
name = "{stem}"
seed = 0
backend = "auto"         # numba trains the deep ensembles with a fused parallel step when installed

[task]
kind = "teacher_student" # a fixed training set of n_train points drawn from a k-unit teacher
d = 8                    # input dimension D
teacher_width = 2

[model]
depth = 2                # hidden layers L (>= 2: the deep muP network; 1 is the two-layer model)
activation = "tanh"      # the sampled DMFT needs a smooth activation at L >= 2 (tanh, erf, linear; not relu)
gamma0 = 1.0             # richness: 0 -> the lazy/NTK limit, larger -> more feature learning

[limit]
method = "dmft"          # sampled dynamical mean-field theory (dmft_linear: exact, linear units; ntk: gamma0 -> 0)
dt = 0.1                 # MUST equal train.lr below: the discrete DMFT is then the exact N -> infinity limit
                         # of full-batch GD at that step, so networks and limit differ only by width effects
dmft_samples = 1000      # Monte Carlo samples per layer (MC error of f ~ 1/sqrt(samples), reported as f_mf_err)
dmft_tangent_samples = 100  # samples for the response functions (cost ~ this x (P T)^3)

[train]
algorithm = "gd"         # full-batch gradient descent on the n_train points: what the DMFT describes exactly
lr = 0.1                 # = limit.dt (see above)
n_train = 4              # training points P (the DMFT's cost grows like (P T)^3: keep it small)
widths = [64, 256]       # widths N
seeds = 8                # independent networks per width

[time]
t_max = 2.0              # T = t_max / dt = 20 steps
records = 11
spacing = "linear"

[eval]
n_points = 2             # test points (no loss) whose outputs and kernels are recorded
"""

SCAN = """\
# A parameter scan: the gap between finite networks and the mean-field limit as the width and the
# input dimension vary. Written by `meanfield init scan`; 6 runs of about 3 s each
# (`meanfield scan FILE --dry-run` prints the estimate). Resumable: rerun the same command after an
# interruption and only the missing runs are computed.

seeds = 3                # run.seed = 0, 1, 2: teacher, particles and networks redrawn for each

[axes]                   # the grid is the product of these lists (dotted config keys)
"task.d" = [5, 10]

[base.run]               # the base config: the same sections as a run's config, under [base.*]
name = "{stem}"
backend = "auto"

[base.task]
kind = "teacher_student"
teacher_width = 2

[base.model]
activation = "erf"

[base.limit]
particles = 512
expectation = "analytic"
integrator = "euler"
dt = 0.1                 # equal to train.lr: both sides on the same time grid

[base.train]
algorithm = "population_gd"  # exact gradients: the gap is the width effect alone (no SGD noise)
widths = [16, 64, 256]       # every width inside each run, against that run's one limit
seeds = 4
lr = 0.1
coupling = false             # networks drawn independently of the limit's particles

[base.time]
t_max = 2.0
records = 8
snapshots = 0

[base.eval]
n_test = 200
n_points = 4

# On a SLURM cluster: meanfield scan FILE --executor dask --cluster slurm (pip install
# 'meanfield-dynamics[slurm]'; --dry-run prints the job script). Resources never change a run's id.
# [cluster.slurm]
# cores = 8
# memory = "16GB"
# walltime = "02:00:00"
# queue = "compute"
"""

#: the templates, by name (the first is the default)
TEMPLATES: dict[str, Template] = {
    "two-layer": Template("a two-layer network beside its particle limit (about 10 s)", TWO_LAYER,
                          "meanfield run {file} && meanfield plot runs/{stem}"),
    "deep": Template("a deep muP network beside its DMFT limit (about 6 s)", DEEP,
                     "meanfield run {file} && meanfield plot runs/{stem}"),
    "scan": Template("a parameter scan over widths and input dimension (6 runs, under a minute)", SCAN,
                     "meanfield scan {file} --out runs/scans/{stem} && "
                     "meanfield plot runs/scans/{stem} --x width --y risk_gap --hue task.d --logx --logy --fit"),
}


def write_template(name: str, path, force: bool = False) -> str:
    """Write template ``name`` to ``path`` (refusing to replace a file unless ``force``); returns the
    command that runs it. Raises ``ValueError`` for an unknown name, ``FileExistsError``."""
    if name not in TEMPLATES:
        raise ValueError(f"no template {name!r}; choose one of {', '.join(TEMPLATES)}")
    path = os.fspath(path)
    if os.path.exists(path) and not force:
        raise FileExistsError(f"{path} exists; choose another file name or pass --force to replace it")
    stem = os.path.splitext(os.path.basename(path))[0] or name
    t = TEMPLATES[name]
    with open(path, "w") as fh:  # the user's umask applies: a config is meant to be shared and edited
        fh.write(t.text.replace("{stem}", stem))
    return t.command.format(file=path, stem=stem)


def _cmd_init(args):
    words = list(args.words)
    if len(words) == 1 and words[0] in TEMPLATES:  # a template name alone: the file is missing
        print(f"meanfield: init {words[0]} needs the file to write, e.g. `meanfield init {words[0]} "
              f"{words[0].replace('-', '_')}.toml`", file=sys.stderr)
        return 2
    if len(words) == 1:
        name, path = next(iter(TEMPLATES)), words[0]
    elif len(words) == 2:
        name, path = words
    else:
        print("meanfield: init takes [TEMPLATE] FILE, e.g. `meanfield init deep deep.toml`", file=sys.stderr)
        return 2
    from . import store

    try:
        if name in TEMPLATES:  # the folder must exist and take a file (before anything is written)
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise ValueError(f"{path}: the folder {folder} does not exist; create it or choose another FILE")
            store.check_output_location(folder, 1e4, what="FILE's folder")
        cmd = write_template(name, path, force=args.force)
    except (ValueError, FileExistsError, store.OutputLocationError) as e:
        print(f"meanfield: {e}", file=sys.stderr)
        return 2
    if not getattr(args, "quiet", False):
        print(f"wrote {path} ({name}: {TEMPLATES[name].doc}); run it with:\n  {cmd}")
    return 0


def register(sub):
    """Add the ``init`` subcommand."""
    from .cli import common_options

    names = ", ".join(f"{k} ({t.doc})" for k, t in TEMPLATES.items())
    p = sub.add_parser("init", parents=[common_options()], help="write an annotated starting config to edit",
                       description=f"Write an annotated starting config. Templates: {names}.")
    p.add_argument("words", nargs="+", metavar="[TEMPLATE] FILE",
                   help=f"template ({' | '.join(TEMPLATES)}; default {next(iter(TEMPLATES))}) and the file to write")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.set_defaults(func=_cmd_init)
