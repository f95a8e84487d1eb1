"""PII placeholders (datatrove's PIIFormatter, per document) and URL block lists from real list files."""

from __future__ import annotations

import gzip

import pytest
from filters_helpers import docs, real_texts

from tokenmill.config import ConfigError
from tokenmill.filters.pii import PIIFilter
from tokenmill.filters.urls import URLFilter

PII_TEXTS = [
    "Write to jane.doe@example.net or to bob+news@mail.example.co.uk for details.",
    "Our server 8.8.8.8 and the router 192.168.1.1 and 10.0.0.7 are listed; also 1.1.1.1 and 9.9.9.9.",
    "Contact: a@b.io, c@d.io, e@f.io. Host 203.0.114.5 (documentation range 203.0.113.5).",
    "No personal data here, version 1.2.3.4a and 999.1.1.1 are not addresses.",
]


def datatrove_pii(text: str) -> str:
    from datatrove.pipeline.formatters.pii import PIIFormatter

    return PIIFormatter().format(text)  # a fresh formatter: its placeholder cycle starts at the first


def test_pii_matches_datatrove_per_document():
    out = PIIFilter().process(docs(PII_TEXTS))
    assert out["text"].to_pylist() == [datatrove_pii(t) for t in PII_TEXTS]
    assert out["pii.emails"].to_pylist() == [2, 0, 3, 0]
    # public only: 8.8.8.8, 1.1.1.1, 9.9.9.9; 203.0.114.5; and, like datatrove, "1.2.3.4" inside "1.2.3.4a"
    # and "99.1.1.1" inside "999.1.1.1" (the pattern has no word boundaries)
    assert out["pii.ips"].to_pylist() == [0, 3, 1, 2]
    assert out["drop_reason"].to_pylist() == [None] * 4
    assert "email@example.com" in out["text"][0].as_py() and "192.168.1.1" in out["text"][1].as_py()


def test_pii_on_real_text_matches_datatrove(shared_data):
    texts = [t for _, t in real_texts(shared_data) if "@" in t][:150]
    assert len(texts) > 20
    out = PIIFilter().process(docs(texts))
    assert out["text"].to_pylist() == [datatrove_pii(t) for t in texts]
    assert sum(out["pii.emails"].to_pylist()) > 0


def test_pii_can_keep_private_ips_or_replace_all():
    out = PIIFilter(only_remove_public_ips=False, remove_emails=False).process(docs(PII_TEXTS[1:2]))
    assert out["pii.ips"].to_pylist() == [5] and "192.168.1.1" not in out["text"][0].as_py()


@pytest.fixture
def lists(shared_data, tmp_path):
    domains = tmp_path / "domains.txt"
    domains.write_text("# blocked domains\nbad-casino.example\nspam.test\n")
    return {
        "domain_blocklist": [str(domains)],
        "url_blocklist": [str(shared_data / "lists/datatrove_ut1_blacklist_urls.txt.gz")],
        "banned_words": [str(shared_data / "lists/datatrove_banned_words.txt")],
        "banned_subwords": [str(shared_data / "lists/datatrove_banned_subwords.txt")],
        "soft_banned_words": [str(shared_data / "lists/datatrove_soft_banned_words.txt")],
    }


def reasons_and_matches(stage, urls):
    stage.setup()
    out = stage.process(docs(["text"] * len(urls), urls))
    return list(zip(out["drop_reason"].to_pylist(), out["urls.match"].to_pylist(), strict=True))


def test_url_rules_name_the_matched_entry(lists, shared_data):
    listed = gzip.open(shared_data / "lists/datatrove_ut1_blacklist_urls.txt.gz", "rt").readline().strip()
    stage = URLFilter(**lists)
    stage.check()
    got = reasons_and_matches(stage, [
        "https://www.bad-casino.example/page",
        "http://shop.spam.test/x?y=1",
        "https://" + listed + "/",
        "https://example.org/free-xxx-videos",
        "https://example.org/nude-babes-gallery",
        "https://example.org/2girls1cupreaction",
        "https://en.wikipedia.org/wiki/Common_Crawl",
    ])
    assert got == [
        ("urls.domain_blocklist", "bad-casino.example"),
        ("urls.domain_blocklist", "spam.test"),
        ("urls.url_blocklist", listed),
        ("urls.banned_word", "xxx"),
        ("urls.soft_banned_words", "babes nude"),
        ("urls.banned_subword", "2girls1cup"),
        (None, None),
    ]


def test_soft_word_threshold_is_configurable(lists):
    assert reasons_and_matches(URLFilter(**lists, soft_word_threshold=3), ["https://example.org/nude-babes"]) \
        == [(None, None)]


def test_missing_or_unreadable_list_fails_check_naming_the_file(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(ConfigError, match=str(missing)):
        URLFilter(banned_words=[str(missing)]).check()
    broken = tmp_path / "broken.txt.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ConfigError, match=str(broken)):
        URLFilter(domain_blocklist=[str(broken)]).check()
