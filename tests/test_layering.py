"""The import graph keeps its layers (issue 13): checked statically over the source tree.

* ``meanfield_solvers`` (numerics) never imports ``meanfield`` (the product);
* the two wings, ``meanfield.twolayer`` (particle models) and ``meanfield.deep`` (deep muP
  networks), never import each other: what both need lives in ``meanfield.core``;
* no wing, core module or solver imports the orchestrator (``meanfield.run``) or the plot dispatcher
  (``meanfield.plot``); figure modules draw through the one style module ``meanfield.viz``;
* no private (``_name``) function, class or module is imported from another package;
* ``meanfield`` never imports the benchmark code, and the installed distribution does not ship a
  top-level ``benchmarks`` package.
"""
import ast
import os
import tomllib

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))


def _modules(top):
    """``{dotted module name: path}`` of every .py file under package ``top``."""
    out = {}
    for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
        if "__pycache__" in dirpath:
            continue
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].replace(os.sep, ".")
                out[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(dirpath, f)
    return out


def _package_of(mod, path):
    return mod if path.endswith("__init__.py") else mod.rsplit(".", 1)[0]


def _imports(mod, path):
    """``[(imported module, names or None, lineno)]`` of a module, relative imports resolved."""
    tree = ast.parse(open(path).read(), path)
    pkg = _package_of(mod, path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            out.append((target, [a.name for a in node.names], node.lineno))
    return out


ALL = {**_modules("meanfield"), **_modules("meanfield_solvers")}


def _edges():
    for mod, path in ALL.items():
        for target, names, line in _imports(mod, path):
            # 'from pkg import sub' imports the module pkg.sub
            targets = [target] + [f"{target}.{n}" for n in (names or []) if f"{target}.{n}" in ALL]
            yield mod, path, line, targets, names


def _violations(pred):
    return [f"{os.path.relpath(p, ROOT)}:{line} imports {t}" for m, p, line, ts, _ in _edges() for t in ts
            if pred(m, t)]


def _under(mod, pkg):
    return mod == pkg or mod.startswith(pkg + ".")


def test_solvers_never_import_meanfield():
    assert _violations(lambda m, t: _under(m, "meanfield_solvers") and _under(t, "meanfield")) == []


def test_the_wings_never_import_each_other():
    bad = _violations(lambda m, t: (_under(m, "meanfield.twolayer") and _under(t, "meanfield.deep"))
                      or (_under(m, "meanfield.deep") and _under(t, "meanfield.twolayer")))
    assert bad == []


def test_nothing_below_the_orchestrator_imports_it_or_the_plot_dispatcher():
    below = ("meanfield.twolayer", "meanfield.deep", "meanfield.core", "meanfield.viz", "meanfield.analysis",
             "meanfield.figures", "meanfield_solvers")
    bad = _violations(lambda m, t: any(_under(m, b) for b in below)
                      and (t in ("meanfield.run", "meanfield.plot", "meanfield.cli")))
    assert bad == []


def test_figure_modules_use_the_one_style_module():
    figure_modules = [m for m in ALL if m.endswith("plot") or m.endswith("figures")]
    assert {"meanfield.plot", "meanfield.figures", "meanfield.twolayer.plot", "meanfield.deep.plot",
            "meanfield.scan.plot"} <= set(figure_modules)
    for m in figure_modules:
        src = open(ALL[m]).read()
        assert "rcParams.update" not in src, f"{m} sets its own style; draw through meanfield.viz.style"
        if m != "meanfield.plot":  # the dispatcher draws nothing itself
            assert any(_under(t, "meanfield.viz") for _, _, _, ts, _ in _edges_of(m) for t in ts), m


def _edges_of(mod):
    return [e for e in _edges() if e[0] == mod]


def test_no_private_name_is_imported_across_packages():
    bad = []
    for mod, path, line, targets, names in _edges():
        pkg = _package_of(mod, path)
        target = targets[0]
        for part_mod in [target] + targets[1:]:
            last = part_mod.rsplit(".", 1)[-1]
            if last.startswith("_") and not last.startswith("__") and part_mod in ALL:
                # a private module: only its own package may import it
                if part_mod.rsplit(".", 1)[0] != pkg:
                    bad.append(f"{os.path.relpath(path, ROOT)}:{line} imports private module {part_mod}")
        for n in names or []:
            if n.startswith("_") and not n.startswith("__") and f"{target}.{n}" not in ALL:
                bad.append(f"{os.path.relpath(path, ROOT)}:{line} imports private name {n} from {target}")
    assert bad == []


def test_benchmarks_stay_out_of_the_package():
    assert _violations(lambda m, t: _under(t, "benchmarks")) == []
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        find = tomllib.load(fh)["tool"]["setuptools"]["packages"]["find"]
    assert not any(p.startswith("benchmarks") for p in find.get("include", [])), find
