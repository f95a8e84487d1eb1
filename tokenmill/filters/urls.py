"""URL block lists: domains, exact URLs, banned words and subwords, from files the job names.

The rules are FineWeb's (datatrove `URLFilter`), with the lists supplied by the job (the project ships no
third-party lists; ../shared/data/lists holds real ones, e.g. UT1's adult URLs and datatrove's word lists):

* `urls.domain_blocklist` — the host or any parent domain of it is listed (covers tldextract's registered
  domain and full host, without needing the public-suffix list at run time);
* `urls.url_blocklist` — the URL, without scheme, `www.` and trailing `/`, is listed (UT1 lists URLs that way;
  datatrove compares the raw URL with its scheme, which never matches them);
* `urls.banned_word` — a listed word is one of the URL's alphanumeric words (lower-cased);
* `urls.soft_banned_words` — at least `soft_word_threshold` distinct listed soft words are;
* `urls.banned_subword` — a listed subword occurs in the URL with everything but letters and digits removed.

Words and subwords are normalized like datatrove's (lower case, non-alphanumerics removed). The matched entry
goes to the `urls.match` column. ~1,000 URLs take a few ms: the lists are hash sets and one regex.
"""

from __future__ import annotations

import re
from typing import ClassVar

import pyarrow as pa

from tokenmill.filters.base import read_list, scatter
from tokenmill.schema import URL, set_column, with_drop_reason
from tokenmill.stage import Stage, StageConfig

_NON_ALNUM = re.compile(r"[^a-zA-Z0-9]+")


class URLConfig(StageConfig):
    domain_blocklist: list[str] = []  # files: one domain per line (gzip ok), '#' comments
    url_blocklist: list[str] = []  # files: one URL per line, scheme optional
    banned_words: list[str] = []  # files: FineWeb's banned_words.txt
    banned_subwords: list[str] = []  # files: FineWeb's banned_subwords.txt
    soft_banned_words: list[str] = []  # files: FineWeb's soft_banned_words.txt
    soft_word_threshold: int = 2  # FineWeb / datatrove default


def normalize_word(word: str) -> str:
    return _NON_ALNUM.sub("", word).lower()


def url_key(url: str) -> str:
    """`host/path?query` with the host lower-cased, no scheme, no `www.`, no trailing slash."""
    s = url.strip()
    if "://" in s:
        s = s.split("://", 1)[1]
    host, sep, rest = s.partition("/")
    host = host.lower().removeprefix("www.")
    return (host + sep + rest).rstrip("/")


class URLFilter(Stage):
    name = "urls"
    Config = URLConfig
    score_columns: ClassVar[tuple[str, ...]] = ()

    def check(self) -> None:
        self._load()

    def setup(self) -> None:
        if getattr(self, "_lists", None) is None:
            self._lists = self._load()

    def _load(self) -> dict:
        cfg = self.config

        def words(files: list[str], what: str) -> set[str]:
            return {w for f in files for w in (normalize_word(x) for x in read_list(f, what)) if w}

        domains = {url_key(d).split("/")[0] for f in cfg.domain_blocklist for d in read_list(f, "domain list")}
        urls = {url_key(u) for f in cfg.url_blocklist for u in read_list(f, "URL list")}
        subwords = words(cfg.banned_subwords, "banned subword list")
        pattern = re.compile("|".join(map(re.escape, sorted(subwords, key=len, reverse=True)))) if subwords else None
        return {"domains": domains, "urls": urls, "words": words(cfg.banned_words, "banned word list"),
                "soft": words(cfg.soft_banned_words, "soft banned word list"), "subwords": pattern}

    def __getstate__(self) -> dict:
        return {"config": self.config}  # lists are reloaded in the worker

    def process(self, table: pa.Table) -> pa.Table:
        self.setup()
        from tokenmill.filters.base import live_rows

        live = live_rows(table)
        urls = table[URL].take(pa.array(live)).to_pylist() if len(live) else []
        results = [self.match(u or "") for u in urls]
        reasons = [None] * table.num_rows
        for i, (reason, _) in zip(live.tolist(), results, strict=True):
            reasons[i] = reason
        table = set_column(table, "urls.match", scatter(None, live, [m for _, m in results], pa.string(),
                                                          table.num_rows))
        return with_drop_reason(table, reasons)

    def match(self, url: str) -> tuple[str | None, str | None]:
        """(reason, matched list entry) for one URL; (None, None) when no rule matches."""
        lists = self._lists
        key = url_key(url)
        host = key.split("/")[0].split("?")[0].rsplit("@", 1)[-1].split(":")[0]
        parts = host.split(".")
        for i in range(len(parts)):
            parent = ".".join(parts[i:])
            if parent in lists["domains"]:
                return "urls.domain_blocklist", parent
        if key in lists["urls"]:
            return "urls.url_blocklist", key
        url_words = {w for w in _NON_ALNUM.split(url.lower()) if w}
        hit = next((w for w in sorted(url_words) if w in lists["words"]), None)
        if hit:
            return "urls.banned_word", hit
        soft = sorted(url_words & lists["soft"])
        if soft and len(soft) >= self.config.soft_word_threshold:
            return "urls.soft_banned_words", " ".join(soft)
        if lists["subwords"] is not None:
            m = lists["subwords"].search(normalize_word(url))
            if m:
                return "urls.banned_subword", m.group(0)
        return None, None
