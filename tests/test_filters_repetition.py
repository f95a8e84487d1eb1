"""Pathological documents: planted spam is dropped, clean real pages are not, one test per rule."""

from __future__ import annotations

import pytest
from filters_helpers import crawl_texts, drop_reasons, html_pages, real_texts

from tokenmill.filters.repetition import RepetitionConfig, RepetitionFilter

ARTICLE = (
    "The town council met on Tuesday evening to discuss the new library, which has been delayed twice since "
    "the spring. Residents asked why the budget had grown, and the treasurer explained that the price of "
    "steel and timber rose sharply last year.\n\nConstruction is now expected to finish before the winter "
    "holidays, according to the contractor. The mayor thanked volunteers who kept the temporary reading room "
    "open in the school gymnasium, and promised a public opening with a concert in the main hall."
)


def with_inline_run(text: str, ch: str, n: int) -> str:
    cut = text.index("steel")
    return text[:cut] + ch * n + " " + text[cut:]


def test_fineweb_stack_passes_an_inline_run_that_we_drop(shared_data):
    """The case from the issue: ~800 "m" inside a normal article. FineWeb's four filters keep it; we do not."""
    import datatrove.pipeline.filters as dt
    from datatrove.data import Document

    fineweb = [dt.GopherRepetitionFilter(), dt.GopherQualityFilter(),
               dt.C4QualityFilter(filter_no_terminal_punct=False), dt.FineWebQualityFilter()]
    checked = 0
    for _, article in real_texts(shared_data)[100:]:  # real CC articles that FineWeb keeps
        if not 2_000 < len(article) < 20_000 or any(f.filter(Document(text=article, id="a")) is not True
                                                     for f in fineweb):
            continue
        cut = article.index(" ", len(article) // 2)
        text = article[:cut] + " " + "m" * 800 + article[cut:]
        assert all(f.filter(Document(text=text, id="x")) is True for f in fineweb)
        assert drop_reasons(RepetitionFilter(), [text]) == ["repetition.char_run"]
        checked += 1
        if checked == 5:
            break
    assert checked == 5


@pytest.mark.parametrize("ch", list("m=*!x#"))
def test_inline_run_at_the_documented_length(ch):
    limit = RepetitionConfig().max_char_run
    assert drop_reasons(RepetitionFilter(), [with_inline_run(ARTICLE, ch, limit + 1)]) == ["repetition.char_run"]
    assert drop_reasons(RepetitionFilter(), [with_inline_run(ARTICLE, ch, limit)]) == [None]


@pytest.mark.parametrize("text,reason", [
    (ARTICLE + " " + "ab" * 200, "repetition.char_period"),
    (ARTICLE + " " + "click here! " * 40, "repetition.char_period"),
    (ARTICLE + " " + "Buy cheap products online today. " * 20, "repetition.word_period"),
    ("\n".join(f"{i} {i * 7} {i * 13} {i * 31}" for i in range(1000, 1100)), "repetition.char_class"),
    (ARTICLE[:300] + " " + " ".join(f"$&%*@{i * i % 97}" for i in range(150)), "repetition.char_class"),
    (ARTICLE + "\n" + "\n".join("data row value cell" for _ in range(300)), "repetition.word_period"),
])
def test_rules(text, reason):
    assert drop_reasons(RepetitionFilter(), [text]) == [reason]


def test_compression_rule():
    block = (ARTICLE + " ") * 30  # a long page that is one paragraph pasted over and over
    stage = RepetitionFilter(max_periodic_words=10_000, max_periodic_chars=10_000)
    assert drop_reasons(stage, [block]) == ["repetition.compression"]
    assert drop_reasons(stage, [ARTICLE]) == [None]


def test_every_threshold_is_configurable():
    relaxed = RepetitionFilter(max_char_run=10_000, max_periodic_chars=10_000, max_top_char_frac=1.0)
    assert drop_reasons(relaxed, [with_inline_run(ARTICLE, "m", 800)]) == [None]


def test_planted_spam_in_generated_crawl_is_dropped(small_crawl):
    rows = crawl_texts(small_crawl)
    reasons = drop_reasons(RepetitionFilter(), [t for _, t, _ in rows])
    spam = [(truth, r) for (truth, _, _), r in zip(rows, reasons, strict=True)
            if truth.get("kind") in ("spam_page", "inline_spam")]
    assert len(spam) >= 6
    for truth, r in spam:  # inline runs are 200..2000 chars, above the documented 160
        assert r is not None, truth
    clean = [r for (truth, _, _), r in zip(rows, reasons, strict=True) if truth.get("kind") == "clean"]
    print(f"planted spam: {len(spam)} dropped of {len(spam)}; clean pages dropped: {sum(map(bool, clean))}")
    assert not any(clean)


def test_no_clean_real_page_is_dropped(shared_data):
    pages = html_pages(shared_data)
    assert len(pages) > 300
    reasons = drop_reasons(RepetitionFilter(), [t for _, t in pages])
    assert [(name, r) for (name, _), r in zip(pages, reasons, strict=True) if r] == []


def test_no_real_cc_text_is_dropped(shared_data):
    texts = [t for o, t in real_texts(shared_data) if not o.startswith("html:")]
    reasons = drop_reasons(RepetitionFilter(), texts)
    assert [r for r in reasons if r] == []
