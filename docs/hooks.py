"""mkdocs hooks of the documentation site (``hooks:`` in mkdocs.yml); nothing here is committed output.

* **README sections, included, not copied.** A guide page holds directives
  ``<!-- readme: Heading -->`` (the README section under that heading, its heading level kept) or
  ``<!-- readme-page: Heading -->`` (the same, headings raised so that the section's heading is the
  page's title); ``<!-- readme: intro -->`` is the README's opening, before its first ``##``. The
  README stays complete for GitHub readers and the site cannot diverge from it. Every ``##`` section
  of the README must be included somewhere or be generated (the config reference): a section that
  is not is a warning, hence an error under ``mkdocs build --strict``.
* **GitHub Markdown to Python-Markdown**, on included README text only: links are rewritten for
  the page they land on (``docs/X`` → ``X``, ``#anchor`` → the page that now holds that section,
  ``BENCHMARKS.md`` → its generated page, another repository file → its path in code), a plain
  mention of ``docs/X.md`` becomes a link to it, nested list items indented by 2 get the 4 spaces
  Python-Markdown needs, and a list that follows a paragraph line gets the blank line it needs.
* **Generated pages**: ``config.md`` from :func:`meanfield.config.reference_markdown` (the schema,
  so the reference always matches validation), ``benchmarks.md`` from the repository's
  BENCHMARKS.md, and ``tutorial.md`` from ``tutorial.ipynb`` (its Markdown and code cells; the
  notebook is stored without outputs, and ``tests/test_notebook.py`` executes it).
* **Docstrings**: Sphinx roles (``:class:`~a.B```) render as code, as Sphinx would name them, and
  their maths (``:math:`...```, ``.. math::``) is typeset by MathJax (mkdocstrings shows both verbatim).
"""
from __future__ import annotations

import logging
import posixpath
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.meanfield")

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DIRECTIVE = re.compile(r"^<!--\s*(readme|readme-page):\s*(.+?)\s*-->\s*$", re.M)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")
LIST_ITEM = re.compile(r"^(\s*)([*+-]|\d+\.)\s")
ROLE_HTML = re.compile(r":(?:py:)?(class|func|meth|mod|data|attr|obj|exc|const):<code>(~?)([^<]*)</code>")
MATH_ROLE_HTML = re.compile(r":math:<code>([^<]*)</code>")
# '.. math::' with its formula on the same paragraph, or alone with the formula indented below it
# (which Markdown reads as a code block)
MATH_BLOCK_HTML = re.compile(r"<p>\.\. math::(?:\s*</p>\s*<pre><code>(.*?)</code></pre>|\s*(.*?)</p>)", re.S)
GENERATED = {"Config reference": "config.md"}  # README sections the site generates instead of including
REPO_PAGES = {"BENCHMARKS.md": "benchmarks.md"}  # repository files the site publishes as pages


def github_slug(text: str) -> str:
    """The anchor GitHub gives a heading (lower case, punctuation dropped, spaces to hyphens)."""
    text = re.sub(r"[`*_]", "", text.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def readme_sections(text: str) -> dict[str, tuple[int, list[str]]]:
    """README headings (outside code fences) → (level, the lines of the section, heading included).

    A section runs to the next heading of the same or a higher level; ``"intro"`` is everything
    between the title and the first ``##``.
    """
    lines = text.splitlines()
    heads = []  # (line index, level, title)
    fenced = False
    for i, line in enumerate(lines):
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            heads.append((i, len(m.group(1)), m.group(2)))
    out = {}
    for k, (i, level, title) in enumerate(heads):
        end = next((j for j, lv, _ in heads[k + 1:] if lv <= level), len(lines))
        out[title] = (level, lines[i:end])
    first = next((i for i, lv, _ in heads if lv == 2), len(lines))
    out["intro"] = (1, lines[1:first])
    return out


class Site:
    """What the hooks share within one build: the README's sections and the page each one landed on."""

    def __init__(self):
        self.sections = readme_sections(README.read_text(encoding="utf-8"))
        self.anchor_page: dict[str, str] = {}  # GitHub slug of a README heading → src_uri of its page

    def index(self, files) -> None:
        """Find the directives of every page, map every included heading's anchor to that page,
        and warn about README sections that no page includes."""
        included = set(GENERATED)
        for f in files.documentation_pages():
            for _, title in DIRECTIVE.findall(Path(f.abs_src_path).read_text(encoding="utf-8")) if f.abs_src_path else []:
                if title not in self.sections:
                    log.warning("%s includes README section %r, which the README does not have", f.src_uri, title)
                    continue
                included.add(title)
                for line in self.sections[title][1]:
                    m = HEADING.match(line)
                    if m:
                        self.anchor_page[github_slug(m.group(2))] = f.src_uri
        for title, page in GENERATED.items():
            self.anchor_page[github_slug(title)] = page
        for title, (level, _) in self.sections.items():
            if level == 2 and title not in included:
                log.warning("README section %r is on no page of the site: include it with "
                            "<!-- readme: %s --> in a page of docs/", title, title)

    def section(self, title: str, page_uri: str, raise_to_title: bool) -> str:
        level, lines = self.sections[title]
        shift = level - 1 if raise_to_title else 0
        out = []
        fenced = False
        for line in (lines if title != "intro" else lines):
            if FENCE.match(line):
                fenced = not fenced
                out.append(line)
                continue
            if fenced:
                out.append(line)
                continue
            m = HEADING.match(line)
            if m and shift:
                line = "#" * (len(m.group(1)) - shift) + " " + m.group(2)
            line = link_mentions(self.rewrite_links(line, page_uri), page_uri)
            out.append(line)
        return "\n".join(python_markdown_lists(out))

    def link(self, target: str, page_uri: str) -> str | None:
        """A README link target, as seen from the page at ``page_uri`` (None: a repository file the
        site does not publish)."""
        here = posixpath.dirname(page_uri)
        if target.startswith("#"):
            page = self.anchor_page.get(target[1:])
            if page is None or page == page_uri:
                return target  # unknown anchors are left for mkdocs' anchor validation to report
            return posixpath.relpath(page, here or ".") + target
        if "://" in target or target.startswith("mailto:"):
            return target
        path, _, frag = target.partition("#")
        if path.startswith("docs/"):
            path = path[len("docs/"):]
        elif path in REPO_PAGES:
            path = REPO_PAGES[path]
        elif (ROOT / path).exists():
            return None  # a file of the repository that the site does not publish (LICENSE, a script)
        return posixpath.relpath(path, here or ".") + (("#" + frag) if frag else "")

    def rewrite_links(self, line: str, page_uri: str) -> str:
        """Every link of a README line, as seen from the page; a link to a repository file that the
        site does not publish becomes its text and the file's path in code."""
        def one(m):
            target = self.link(m.group(2), page_uri)
            if target is not None:
                return m.group(1) + "(" + target + ")"
            text = m.group(1)[1:-1] if not m.group(1).startswith("!") else m.group(1)[2:-1]
            return f"{text} (`{m.group(2)}`)" if text.strip("`") != m.group(2) else f"`{m.group(2)}`"
        return LINK.sub(one, line)


MENTION = re.compile(r"(?<![\[/\w-])(?<!\]\()docs/([\w-]+\.md)\b(?![\])])")


def link_mentions(line: str, page_uri: str) -> str:
    """Plain-text mentions of a derivation (``docs/dmft.md §3.1``) become links to its page; code
    spans and existing links are left alone."""
    parts = line.split("`")
    for k in range(0, len(parts), 2):  # outside code spans
        parts[k] = MENTION.sub(lambda m: (f"[docs/{m.group(1)}]({posixpath.relpath(m.group(1), posixpath.dirname(page_uri) or '.')})"
                                          if (ROOT / "docs" / m.group(1)).is_file() else m.group(0)), parts[k])
    return "`".join(parts)


def python_markdown_lists(lines: list[str]) -> list[str]:
    """GitHub Markdown lists as Python-Markdown reads them: a blank line before a list that follows
    a paragraph line (and before an item that follows the indented content of the previous one), and
    4 spaces (not 2) for the content nested in a list item."""
    out = []
    fenced = False
    in_list = False
    for line in lines:
        if FENCE.match(line):
            fenced = not fenced
        if fenced or FENCE.match(line):
            out.append(line)
            continue
        item = LIST_ITEM.match(line)
        if item and not item.group(1):
            # a list after a paragraph line, or an item after the indented content of the previous
            # item, starts a new block in Python-Markdown only after a blank line (GitHub needs none)
            if out and out[-1].strip() and (not in_list or out[-1].startswith(" ")) \
                    and not out[-1].lstrip().startswith("|"):
                out.append("")
            in_list = True
        elif not line.strip():
            pass
        elif line.startswith("    ") and not in_list:
            pass  # an indented code block
        elif not line.startswith(" "):
            in_list = False
        if in_list and re.match(r"^ {2,3}\S", line):
            line = "    " + line.lstrip()
        out.append(line)
    return out


_site: Site | None = None


def on_config(config):
    global _site
    _site = Site()
    if str(ROOT) not in sys.path:  # the checkout's meanfield, also when it is not installed
        sys.path.insert(0, str(ROOT))
    return config


def on_files(files, config):
    from meanfield.config import reference_markdown

    _, lines = _site.sections["Config reference"]
    prose = []
    for line in lines[1:]:
        if line.startswith("**["):
            break
        prose.append(line)
    head = ("# Config reference\n\n" + "\n".join(prose).strip() + "\n\n"
            "Generated from the schema (`meanfield/config.py`, `reference_markdown()`) when the site is "
            "built, so it lists exactly what validation accepts. `meanfield init two-layer|deep|scan FILE` "
            "writes an annotated starting config.\n\n")
    files.append(File.generated(config, "config.md", content=head + reference_markdown()))
    for repo_path, page in REPO_PAGES.items():
        text = (ROOT / repo_path).read_text(encoding="utf-8")
        files.append(File.generated(config, page, content="\n".join(python_markdown_lists(
            [_site.rewrite_links(ln, page) for ln in text.splitlines()]))))
    files.append(File.generated(config, "tutorial.md", content=notebook_markdown(ROOT / "docs" / "tutorial.ipynb")))
    _site.index(files)
    return files


def notebook_markdown(path: Path) -> str:
    """A notebook as a page: its Markdown cells as they are, its code cells as Python blocks."""
    import json

    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    out = ["!!! note \"Run it yourself\"\n    [Download the notebook](tutorial.ipynb) (`docs/tutorial.ipynb`) and "
           "open it in Jupyter; it runs in well under a minute.\n"]
    blocks = ["".join(c["source"]) if c["cell_type"] == "markdown" else "```python\n" + "".join(c["source"]) + "\n```"
              for c in cells]
    return "\n\n".join(blocks[:1] + out + blocks[1:]) + "\n"  # the note under the notebook's title


def on_page_markdown(markdown, page, config, files):
    def include(m):
        kind, title = m.group(1), m.group(2)
        if title not in _site.sections:
            return m.group(0)  # reported by Site.index
        return _site.section(title, page.file.src_uri, raise_to_title=(kind == "readme-page"))

    return DIRECTIVE.sub(include, markdown)


def on_page_content(html, page, config, files):
    # Sphinx shows ``:class:`~a.b.C``` as ``C`` and ``:class:`a.b.C``` in full
    html = ROLE_HTML.sub(lambda m: "<code>" + (m.group(3).rsplit(".", 1)[-1] if m.group(2) else m.group(3))
                         + "</code>", html)
    # docstring maths (:math:`...` and .. math:: blocks) typeset by MathJax (docs/javascripts/mathjax.js)
    html = MATH_ROLE_HTML.sub(lambda m: '<span class="arithmatex">\\(' + m.group(1) + "\\)</span>", html)
    return MATH_BLOCK_HTML.sub(lambda m: '<div class="arithmatex">\\[' + (m.group(1) or m.group(2) or "").strip()
                               + "\\]</div>", html)
