"""How the site writes a few kinds of value: a metric with its interval, p-values, citations (with their link),
parameter counts, the code that made a result."""

from __future__ import annotations

import re

from markupsafe import Markup, escape

from runner.results.provenance import code_of

URL = re.compile(r"(https?://[^\s<>\"]+[^\s<>\".,;)])|\b(doi:\s*|https?://doi\.org/)?(10\.\d{4,9}/[^\s<>\"]+[^\s<>\".,;)])|"
                 r"\barXiv:(\d{4}\.\d{4,5}(?:v\d+)?)")

SYMMETRIC_METHODS = ("t-interval", "reported")  # intervals stated as mean ± half-width
TOLERANCE = 5e-4  # half the printed precision: a smaller clip does not show at three decimals


def _three(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def metric_text(m: dict) -> str:
    """A metric as the site prints it: 'mean ± half-width' only for an interval that is symmetric as filed (a
    t-interval or a reported mean ± half-width that no bound of [0, 1] clipped), else 'mean [low, high]' (a bootstrap
    interval, or a t-interval clipped at 0 or 1: 0.306 ± 0.420 would claim an F1 below 0), the mean alone without an
    interval, 'n/a' without a mean."""
    mean, half, low, high = m.get("mean"), m.get("half_width"), m.get("ci_low"), m.get("ci_high")
    if mean is None:
        return "n/a"
    unclipped = low is None or high is None or (
        half is not None and abs(mean - half - low) <= TOLERANCE and abs(mean + half - high) <= TOLERANCE)
    if half is not None and m.get("ci_method") in SYMMETRIC_METHODS and unclipped:
        return f"{_three(mean)} ± {_three(half)}"
    if low is not None and high is not None:
        return f"{_three(mean)} [{_three(low)}, {_three(high)}]"
    return _three(mean)


def p_value(p) -> str:
    """'< 0.001' below a thousandth (a rounded 0 would claim certainty), else three decimals; '—' when absent."""
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def citation_html(text: str | None) -> Markup:
    """A citation with its URL, DOI or arXiv id made a link (everything else escaped)."""
    if not text:
        return Markup("—")
    out, last = [], 0
    for match in URL.finditer(text):
        out.append(escape(text[last:match.start()]))
        if match.group(1):
            href = match.group(1)
        elif match.group(3):
            href = "https://doi.org/" + match.group(3)
        else:
            href = "https://arxiv.org/abs/" + match.group(4)
        out.append(Markup('<a href="{}">{}</a>').format(href, match.group(0)))
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


def external_link(url: str | None, text: str | None = None) -> Markup:
    """A link to an http(s) address from a card (its text escaped); any other scheme (javascript:, data:, a path) is
    shown as text, never linked: cards are submitted by anyone."""
    if not url:
        return Markup("—")
    label = text or url
    if not re.fullmatch(r"https?://[^\s<>\"']+", str(url)):
        return escape(label)
    return Markup('<a class="external" href="{}" rel="noopener">{}</a>').format(url, label)


def hub_url(repo: str | None, revision: str | None = None) -> str | None:
    """The Hugging Face page of a model repo (at its revision when one is pinned), or None."""
    from urllib.parse import quote

    if not repo:
        return None
    url = "https://huggingface.co/" + quote(str(repo), safe="/")
    return url + "/tree/" + quote(str(revision), safe="") if revision else url


def code_html(result: dict) -> Markup:
    """The code that made a result (runner.results.provenance code_of): the code sha256's first 12 hex digits, the
    commit's first 9 and 'dirty' where code files differed from it (then only a sha256 names the code, and a
    result filed before results recorded one has none: said so); 'not recorded' when the result says nothing."""
    code = code_of(result)
    if code is None:
        return Markup('<span class="warn" title="this result does not say which code made it">not recorded</span>')
    parts = []
    if code.get("sha256"):
        parts.append(Markup('<code class="hash" title="sha256 of the registry\'s code: {}">{}</code>')
                     .format(code["sha256"], code["sha256"][:12]))
    if code.get("git_commit"):
        parts.append(Markup('commit <code title="{}">{}</code>').format(code["git_commit"], code["git_commit"][:9]))
        if code.get("git_dirty") and code.get("sha256"):
            parts.append(Markup('<span class="warn" title="code files differed from this commit: only the sha256 '
                                'names the code">dirty</span>'))
        elif code.get("git_dirty"):
            parts.append(Markup('<span class="warn" title="filed from uncommitted changes to this commit, before '
                                'results recorded a code sha256: the exact code is not known">dirty, code not '
                                'recorded</span>'))
        elif code.get("git_dirty") is False:
            parts.append(Markup('<span title="no code file differed from this commit">clean</span>'))
    else:
        parts.append(Markup("no git"))
    return Markup(" · ").join(parts)
