"""DOCS_LINT: the links of the workspace's Markdown, checked without the network.

Every Markdown file git would track (files.walk: .gitignore honoured, hidden names skipped) is
parsed as CommonMark (markdown-it, the parser behind GitHub-like renderers, so a link is what a
reader would click, not what a regex guesses). Each relative link or image must name a file that
exists inside the workspace, and each `#anchor` a heading of its file under GitHub's slug rules
(or an HTML `id`/`name`); a link that leaves the workspace (`..` past its root, an absolute path,
a symlink out) is reported too, since the docs would break anywhere else. URLs with a scheme
(http, https, mailto) are skipped: no network.
"""

from __future__ import annotations

import os
import re
import unicodedata
import urllib.parse
from pathlib import Path

from markdown_it import MarkdownIt

from gestalt_jax.agent.tools.base import FAILED, OK, Context, Item, Result
from gestalt_jax.agent.tools.files import walk

MARKDOWN = (".md", ".markdown")
_HTML_ANCHOR = re.compile(r"""\b(?:id|name)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def slug(text: str) -> str:
    """GitHub's heading anchor: lowercase, punctuation dropped (letters, marks, digits, `-`, `_`
    and spaces kept), spaces turned into `-`."""
    kept = "".join(ch for ch in text.lower()
                   if ch in "-_ " or ch.isalnum() or unicodedata.category(ch).startswith("M"))
    return kept.replace(" ", "-")


class _Doc:
    """One parsed Markdown file: its links as (line, kind, target) and the anchors it defines."""

    def __init__(self, parser: MarkdownIt, text: str):
        self.links: list[tuple[int, str, str]] = []
        self.anchors: set[str] = set()
        seen: dict[str, int] = {}  # anchor -> how many duplicates of it were numbered
        tokens = parser.parse(text)
        for i, token in enumerate(tokens):
            if token.type == "html_block":
                self.anchors.update(a.lower() for a in _HTML_ANCHOR.findall(token.content))
            if token.type != "inline":
                continue
            if i and tokens[i - 1].type == "heading_open":
                self.anchors.add(_unique(slug(_plain(token.children or [])), seen))
            line = token.map[0] + 1
            for child in token.children or []:
                if child.type in ("softbreak", "hardbreak"):
                    line += 1
                elif child.type == "link_open":
                    self.links.append((line, "link", str(child.attrs.get("href", ""))))
                elif child.type == "image":
                    self.links.append((line, "image", str(child.attrs.get("src", ""))))
                elif child.type == "html_inline":
                    self.anchors.update(a.lower() for a in _HTML_ANCHOR.findall(child.content))


def _plain(children) -> str:
    """A heading's text as GitHub slugs it: text and code spans, markup left out."""
    return "".join(c.content for c in children if c.type in ("text", "code_inline"))


def _unique(anchor: str, seen: dict[str, int]) -> str:
    """GitHub's duplicate rule: the second `Usage` heading is `usage-1`, the third `usage-2`."""
    base = anchor
    while anchor in seen:
        seen[base] += 1
        anchor = f"{base}-{seen[base]}"
    seen[anchor] = 0
    return anchor


class _Linter:
    """Checks links file by file, parsing each link target's Markdown once for its anchors."""

    def __init__(self, root: Path):
        self.root = root
        self.parser = MarkdownIt("commonmark")
        self.docs: dict[Path, _Doc] = {}

    def doc(self, path: Path) -> _Doc:
        if path not in self.docs:
            self.docs[path] = _Doc(self.parser, path.read_text(encoding="utf-8", errors="replace"))
        return self.docs[path]

    def problems(self, path: Path) -> list[Item]:
        rel = path.relative_to(self.root).as_posix()
        out = []
        for line, kind, target in self.doc(path).links:
            why = self.check(path, kind, target)
            if why:
                out.append(Item(f"{rel}:{line}: {why}", path=rel, line=line))
        return out

    def check(self, path: Path, kind: str, target: str) -> str | None:
        """What is wrong with the link `target` in the file `path`, or None."""
        url = urllib.parse.urlsplit(target)
        if url.scheme or url.netloc or not target:
            return None  # a URL (http, https, mailto, ...): not checked without the network
        file_part, anchor = urllib.parse.unquote(url.path), urllib.parse.unquote(url.fragment)
        if not file_part:
            if anchor and anchor.lower() not in self.doc(path).anchors:
                return f"broken anchor '{target}' (no heading '{anchor}' in this file)"
            return None
        if os.path.isabs(file_part):
            return f"{kind} '{target}' leaves the workspace (an absolute path)"
        lexical = Path(os.path.normpath(path.parent / file_part))
        if not lexical.is_relative_to(self.root):
            return f"{kind} '{target}' leaves the workspace"
        real = Path(os.path.realpath(lexical))
        if not real.is_relative_to(self.root):
            return f"{kind} '{target}' leaves the workspace (through a symlink)"
        if not real.exists():
            return f"broken {kind} '{target}' (no such file)"
        if anchor and real.is_file() and real.name.lower().endswith(MARKDOWN) \
                and anchor.lower() not in self.doc(real).anchors:
            where = lexical.relative_to(self.root).as_posix()
            return f"broken anchor '{target}' (no heading '{anchor}' in {where})"
        return None


def docs_lint(ctx: Context, args: dict[str, str]) -> Result:
    """DOCS_LINT: one item per broken link, image or anchor, and per link leaving the workspace."""
    root = ctx.sandbox.root
    files = [root / rel for rel in walk(root) if rel.lower().endswith(MARKDOWN)]
    linter = _Linter(root)
    items = [item for path in files for item in linter.problems(path)]
    n, m = len(items), len(files)
    summary = f"{n} problem{'s' * (n != 1)} in {m} Markdown file{'s' * (m != 1)}"
    return Result("DOCS_LINT", FAILED if items else OK, summary, items,
                  data=dict(files=m, problems=n))


TOOLS = {"DOCS_LINT": docs_lint}
