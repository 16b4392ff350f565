"""The documentation site builds with warnings as errors and says what the code does.

``mkdocs build --strict`` fails on a broken link or anchor, a missing image, a docstring mkdocstrings
cannot parse, a page outside the navigation and a README section that no page includes
(docs/hooks.py). Beyond building, the tests check what the site must contain: every config key the
schema accepts (the reference is generated from it), the README's sections with their links rewritten
for the site, every experiment script in the gallery, and no citation of a file outside the
repository.
"""
import html
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1",
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                           "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - start
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    print(f"mkdocs build --strict: {wall:.1f} s wall")
    return out


def page(site, name):
    return html.unescape((site / name / "index.html").read_text(encoding="utf-8"))


def test_config_reference_lists_every_schema_key(site):
    from meanfield.config import SCHEMA

    text = page(site, "config")
    missing = [f"{sec}.{key}" for sec, fields in SCHEMA.items() for key in fields
               if f"<code>{key}</code>" not in text]
    assert not missing, f"config reference page lacks {missing}"
    for sec in SCHEMA:
        assert f"[{sec}]" in text


def test_readme_sections_are_on_the_site_with_site_links(site):
    limits = page(site, "limits")
    for method in ("particles", "dmft", "dmft_linear", "ntk", "none"):
        assert f"<code>{method}</code>" in limits
    assert 'id="which-limit-method"' in limits
    quick = page(site, "quickstart")
    # README links, rewritten: the figure under docs/figures and an anchor now on another page
    assert 'src="../figures/quickstart_risk.png"' in quick
    assert 'href="../limits/#which-limit-method"' in quick
    assert "docs/figures" not in re.sub(r"<code>.*?</code>", "", quick)
    conventions = page(site, "conventions")
    assert "erf meaning σ(z) = erf(z/√2)" in conventions
    # the nested list of closed-form kernels is a nested list, as on GitHub
    assert re.search(r"<li>linear: K = c;</li>", conventions)


def test_api_reference_renders_the_entry_points(site):
    api = page(site, "api/meanfield")
    for name in ("meanfield.run.run", "meanfield.core.result.load", "meanfield.core.registry.ModelKind"):
        assert f'id="{name}"' in api, name
    dmft = page(site, "api/dmft")
    assert 'id="meanfield_solvers.dmft.solve_dmft"' in dmft
    assert ":class:" not in dmft and ":func:" not in dmft  # Sphinx roles rendered as code
    dynamics = page(site, "api/dynamics")
    # docstring maths handed to MathJax, not shown as reStructuredText
    assert ":math:" not in dynamics and ".. math::" not in dynamics
    assert '<div class="arithmatex">\\[\\mathrm d\\theta_i' in dynamics
    assert '<span class="arithmatex">\\(\\mathrm dt\\)</span>' in dynamics
    # a '.. math::' whose formula is indented below it (Markdown reads that as a code block)
    assert '<div class="arithmatex">\\[s = \\frac{S_w S_{wuv}' in page(site, "api/analysis")


def test_gallery_has_every_experiment_script(site):
    gallery = (ROOT / "docs" / "gallery.md").read_text(encoding="utf-8")
    scripts = sorted(p.name for p in (ROOT / "experiments").glob("*.py") if not p.name.startswith("_"))
    missing = [s for s in scripts if f"python experiments/{s}" not in gallery]
    assert not missing, f"docs/gallery.md has no entry for {missing}"
    for img in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", gallery):
        assert (site / "gallery" / ".." / img).resolve().is_file(), img


def test_no_citation_of_files_outside_the_repository():
    """Code and docs cite the project's own files (README.md, docs/*.md), never notes outside it."""
    pattern = re.compile(r"(?<![\w.-])(\.\./)*shared/|\bDMFT\.md\b|/work/")
    hits = []
    for top in ("meanfield", "meanfield_solvers", "experiments", "benchmarks", "docs", "tests"):
        for path in (ROOT / top).rglob("*"):
            if path.suffix not in (".py", ".md", ".toml", ".ipynb", ".yml") or "__pycache__" in path.parts:
                continue
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if pattern.search(line) and path.name != "test_docs.py":
                    hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    for name in ("README.md", "BENCHMARKS.md", "mkdocs.yml", "pyproject.toml"):
        for i, line in enumerate((ROOT / name).read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{name}:{i}: {line.strip()}")
    assert not hits, "citations of files outside the repository:\n" + "\n".join(hits)


def test_hook_rewrites_readme_links_for_the_page_they_land_on():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    site = hooks.Site()
    site.anchor_page = {"which-limit-method": "limits.md", "architecture": "api/arch.md"}
    assert site.link("docs/figures/x.png", "quickstart.md") == "figures/x.png"
    assert site.link("docs/figures/x.png", "api/meanfield.md") == "../figures/x.png"
    assert site.link("#which-limit-method", "quickstart.md") == "limits.md#which-limit-method"
    assert site.link("#which-limit-method", "limits.md") == "#which-limit-method"
    assert site.link("#architecture", "index.md") == "api/arch.md#architecture"
    assert site.link("BENCHMARKS.md", "backends.md") == "benchmarks.md"
    assert site.link("https://x.org/a.md", "index.md") == "https://x.org/a.md"
    # a repository file the site does not publish: its text and path, not a broken link
    assert site.rewrite_links("see [the licence](LICENSE) and [x](docs/dmft.md)", "index.md") == \
        "see the licence (`LICENSE`) and [x](dmft.md)"
    assert site.rewrite_links("[`experiments/custom_model.py`](experiments/custom_model.py)", "custom.md") == \
        "`experiments/custom_model.py`"
    # a plain mention of a derivation links to its page; code spans stay code
    assert hooks.link_mentions("exact (docs/dmft.md §3.1); `docs/residual.md`", "limits.md") == \
        "exact ([docs/dmft.md](dmft.md) §3.1); `docs/residual.md`"
    # GitHub's anchors, which the README's own links use
    assert hooks.github_slug("Deep networks: muP and its infinite-width limit (DMFT)") == \
        "deep-networks-mup-and-its-infinite-width-limit-dmft"
    # every README section is known, and the intro stops at the first '##'
    assert "Which limit method?" in site.sections and "Conventions and the maths" in site.sections
    assert not any(line.startswith("## ") for line in site.sections["intro"][1])
    lines = hooks.python_markdown_lists(["text:", "* a", "  * nested", "", "  more of a", "* b", "after"])
    assert lines == ["text:", "", "* a", "    * nested", "", "    more of a", "", "* b", "after"]
