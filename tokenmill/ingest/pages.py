"""HTML pages for the synthetic crawl: a site template (cookie banner, header, <nav> menu, sidebar, footer)
around an article, encoded in the page's charset and declared in the HTTP header, the <meta>, or both.

Each page belongs to one of `N_SITES` sites of its language; a site's furniture (name, menu order, sidebar
titles, theme) is the same on all its pages, as on the real web, where boilerplate repeats across a host.
"""

from __future__ import annotations

import datetime as dt
import html
import random
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

import numpy as np
import xxhash

from tokenmill.ingest.synth import uniform, vocab
from tokenmill.ingest.wordlists import FURNITURE, SYLLABLES, TLDS

N_SITES = 400  # per language
CRAWL_START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
SECONDS_PER_PAGE = 3  # WARC-Date advances 3 s per page: 1M pages span ~35 days, like one CC crawl
CHARSETS = {  # (charset, probability); non-UTF-8 shares are our choice, in the range CC reports for such pages
    "en": (("utf-8", 0.9), ("windows-1252", 0.1)),
    "de": (("utf-8", 0.6), ("iso-8859-1", 0.2), ("windows-1252", 0.2)),
    "fr": (("utf-8", 0.6), ("iso-8859-1", 0.2), ("windows-1252", 0.2)),
    "es": (("utf-8", 0.6), ("iso-8859-1", 0.2), ("windows-1252", 0.2)),
    "ja": (("utf-8", 0.7), ("shift_jis", 0.3)),
}
STATUS_TEXT = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Page:
    url: str
    host: str
    path: str
    status: int
    content_type: str  # the HTTP Content-Type header value
    body: bytes
    charset: str | None  # the encoding actually used (None for non-HTML payloads)
    charset_declared: str  # "header", "meta", "both" or "none"
    date: str  # WARC-Date / HTTP Date, ISO-8601 UTC


def warc_date(i: int) -> dt.datetime:
    return CRAWL_START + dt.timedelta(seconds=SECONDS_PER_PAGE * i)


@lru_cache(maxsize=4096)
def _site(seed: int, lang: str, s: int) -> dict:
    r = random.Random(xxhash.xxh3_64_intdigest(f"site/{seed}/{lang}/{s}".encode()))  # ~20x cheaper than numpy
    name = "".join(r.choices(SYLLABLES["en"].split(), k=r.randint(2, 3)))
    tld = r.choice(TLDS[lang])
    v = vocab(lang, seed)
    sep = " " if lang != "ja" else ""
    lens = [r.randint(4, 7) for _ in range(5)]
    ids = np.searchsorted(v.cdf, [r.random() for _ in range(sum(lens))]).tolist()
    titles = [sep.join(v.words[k] for k in ids[sum(lens[:t]):sum(lens[:t + 1])]) for t in range(5)]
    menu = FURNITURE[lang]["menu"].split("|")
    menu = [menu[k] for k in sorted(r.sample(range(len(menu)), r.randint(6, len(menu))))]
    theme = r.choice(["classic", "magazine", "blog", "portal"])
    e, f = html.escape, FURNITURE[lang]
    return {"host": f"www.{name}.{tld}", "name": name.capitalize(), "titles": titles,
            "theme": theme,
            "menu_html": "".join(f'<li><a href="/{quote(m.lower())}/">{e(m)}</a></li>' for m in menu),
            "popular_html": "".join(f'<li><a href="/popular/{k}.html">{e(t)}</a></li>' for k, t in enumerate(titles)),
            "footer_html": " | ".join(e(x) for x in f["footer"].split("|"))}


def _site_of(seed: int, i: int, lang: str) -> dict:
    return _site(seed, lang, int(uniform(seed, i, 5) * N_SITES))


def url_for(seed: int, i: int, lang: str) -> str:
    site = _site_of(seed, i, lang)
    d = warc_date(i)
    return f"https://{site['host']}/{d.year}/{d.month:02d}/article-{i}.html"


def _pick(options: tuple[tuple[str, float], ...], u: float) -> str:
    for name, p in options:
        if u < p:
            return name
        u -= p
    return options[-1][0]


DECLARED = {True: (("header", 0.4), ("meta", 0.4), ("both", 0.1), ("none", 0.1)),  # UTF-8 may go undeclared
            False: (("header", 0.35), ("meta", 0.35), ("both", 0.3))}  # other charsets are always declared


def _charset(seed: int, i: int, lang: str) -> tuple[str, str]:
    cs = _pick(CHARSETS[lang], uniform(seed, i, 6))
    return cs, _pick(DECLARED[cs == "utf-8"], uniform(seed, i, 7))


def _escape(text: str) -> str:  # generated words never need it; planted benchmark text may
    return html.escape(text, quote=False) if "&" in text or "<" in text or ">" in text else text


def _article_html(blocks: list[str], n_list_items: int) -> str:
    e = _escape
    paras = "".join(f"<p>{e(b)}</p>\n" for b in blocks[1:len(blocks) - n_list_items])
    items = "".join(f"<li>{e(b)}</li>" for b in blocks[len(blocks) - n_list_items:]) if n_list_items else ""
    lst = f"<ul class=\"facts\">{items}</ul>\n" if items else ""
    return f"<article>\n<h1>{e(blocks[0])}</h1>\n{paras}{lst}</article>\n"


def _document(lang: str, site: dict, title: str, main: str, meta: str) -> str:
    f, e = FURNITURE[lang], html.escape
    menu, popular, footer = site["menu_html"], site["popular_html"], site["footer_html"]
    return (f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n{meta}<title>{e(title)} | {site["name"]}</title>\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<link rel="stylesheet" href="/static/{site["theme"]}.css">\n'
            f'<script>window.dataLayer = window.dataLayer || []; function gtag(){{dataLayer.push(arguments);}}</script>\n'
            f'</head>\n<body class="{site["theme"]}">\n'
            f'<div id="cookie-banner" class="consent"><p>{e(f["cookie"])}</p><button>{e(f["accept"])}</button></div>\n'
            f'<header><a class="logo" href="/">{site["name"]}</a>\n<nav><ul class="menu">{menu}</ul></nav>\n</header>\n'
            f'<main>\n{main}<aside class="sidebar"><h3>{e(f["popular"])}</h3><ul>{popular}</ul>\n'
            f'<p class="share">{e(f["share"])}</p></aside>\n</main>\n'
            f'<footer><p>© 2026 {site["name"]}. {footer}</p></footer>\n</body>\n</html>\n')


def build(seed: int, i: int, lang: str, blocks: list[str] | None, special: dict, n_list_items: int) -> Page:
    """The page for `blocks` (title first; None: boilerplate only), or a spam / error / non-HTML page."""
    site = _site_of(seed, i, lang)
    url = url_for(seed, i, lang)
    path = url.split(site["host"], 1)[1]
    date = warc_date(i).strftime("%Y-%m-%dT%H:%M:%SZ")
    if "payload" in special:
        return Page(url, site["host"], path, 200, special["content_type"], special["payload"], None, "none", date)
    cs, declared = _charset(seed, i, lang)
    meta = (f'<meta charset="{cs}">\n' if uniform(seed, i, 8) < 0.5 else
            f'<meta http-equiv="Content-Type" content="text/html; charset={cs}">\n') \
        if declared in ("meta", "both") else ""
    status = special.get("status", 200)
    if status != 200:
        text = html.escape(f"{status} {STATUS_TEXT[status]}")
        doc = f"<!DOCTYPE html>\n<html><head>{meta}<title>{text}</title></head><body><h1>{text}</h1></body></html>\n"
    elif "spam" in special:
        s = html.escape(special["spam"])
        doc = f"<!DOCTYPE html>\n<html><head>{meta}<title>{s[:40]}</title></head><body><div>{s}</div></body></html>\n"
    elif blocks is None:
        doc = _document(lang, site, site["titles"][0], "", meta)
    else:
        doc = _document(lang, site, blocks[0], _article_html(blocks, n_list_items), meta)
    content_type = f"text/html; charset={cs}" if declared in ("header", "both") else "text/html"
    body = doc.encode(cs, errors="xmlcharrefreplace")
    return Page(url, site["host"], path, status, content_type, body, cs, declared, date)
