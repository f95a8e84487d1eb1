"""Gopher repetition, Gopher quality, C4 and FineWeb quality: datatrove's decisions, reasons and rewritten text.

datatrove (the FineWeb reference) runs on the same texts in the same process; every document's reason must
match on >= 99.9% of real CC texts and generated crawl pages (we expect all of them; differences are listed).
"""

from __future__ import annotations

import datatrove.pipeline.filters as dt_filters  # the reference (dev extra)
import pytest
from filters_helpers import crawl_texts, datatrove_reasons, docs, drop_reasons, real_texts

from tokenmill.filters.c4 import C4Filter
from tokenmill.filters.fineweb import FineWebQualityFilter
from tokenmill.filters.gopher import GopherQualityFilter, GopherRepetitionFilter

QUALITY_RENAME = {"gopher_enough_stop_words": "few_stop_words"}


def _gq_rename() -> dict:
    names = ["short_doc", "long_doc", "below_avg_threshold", "above_avg_threshold", "too_many_hashes",
             "too_many_ellipsis", "too_many_bullets", "too_many_end_ellipsis", "below_alpha_threshold"]
    return {**{f"gopher_{n}": n for n in names}, **QUALITY_RENAME}


def pairs():
    """(our stage, datatrove filter, reason prefix, datatrove reason renames) for the FineWeb stack."""
    return [
        (GopherRepetitionFilter(), dt_filters.GopherRepetitionFilter(), "gopher_rep.", {}),
        (GopherQualityFilter(), dt_filters.GopherQualityFilter(), "gopher_quality.", _gq_rename()),
        (C4Filter(), dt_filters.C4QualityFilter(filter_no_terminal_punct=False), "c4.", {}),
        (FineWebQualityFilter(), dt_filters.FineWebQualityFilter(), "fineweb.", {}),
    ]


def reference(texts: list[str]) -> dict[str, tuple[list, list]]:
    """datatrove's (reasons, rewritten texts) per filter. Document-major, so its word-splitting cache (5 texts)
    serves the three filters that split the same text."""
    from datatrove.data import Document

    out = {ours.name: ([], []) for ours, *_ in pairs()}
    refs = pairs()
    for i, t in enumerate(texts):
        for ours, ref, prefix, rename in refs:
            d = Document(text=t, id=str(i))
            r = ref.filter(d)
            out[ours.name][0].append(None if r is True else prefix + rename.get(r[1], r[1]))
            out[ours.name][1].append(d.text)
    return out


def assert_parity(texts: list[str], origins: list[str]) -> None:
    """Same reason for every document; for C4 also the same rewritten text of every kept document."""
    ref = reference(texts)
    for ours, *_ in pairs():
        ours.setup()
        out = ours.process(docs(texts))
        got = out["drop_reason"].to_pylist()
        want, rewritten = ref[ours.name]
        diffs = [(origins[i], g, w) for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
        if ours.name == "c4":
            diffs += [(origins[i], "text differs") for i, (a, b) in enumerate(zip(out["text"].to_pylist(), rewritten,
                      strict=True)) if got[i] is None and want[i] is None and a != b]
        agree = 1 - len(diffs) / len(texts)
        dropped = sum(g is not None for g in got)
        print(f"{ours.name}: {len(texts)} docs, {dropped} dropped, agreement {agree:.4%}; differences: {diffs[:10]}")
        assert agree >= 0.999, diffs


@pytest.mark.slow
def test_parity_on_real_cc_text(shared_data):
    real = real_texts(shared_data)
    assert len(real) > 1000
    assert_parity([t for _, t in real], [o for o, _ in real])


def test_parity_on_generated_crawl(small_crawl):
    rows = crawl_texts(small_crawl)
    assert len(rows) > 250
    assert_parity([t for _, t, _ in rows], [u for _, _, u in rows])


# -- one small test per rule: our reason, and datatrove's agrees ---------------------------------------------

WORDS = ("the of and to with that have be river morning garden winter village teacher market letter window "
         "history mountain question summer kitchen station picture country holiday evening doctor library "
         "bridge forest island journey machine painting harvest theatre silver ocean planet engine coffee "
         "bottle castle desert feather hammer lantern meadow needle orchard pillow saddle thunder valley "
         "walked carried opened painted counted wrote found built showed listened travelled gathered").split()


def prose(n_sentences: int = 12, seed: int = 0) -> str:
    """Plain English prose with stop words, varied lines, terminal punctuation: passes every rule."""
    rng = __import__("numpy").random.default_rng(seed)
    lines = []
    for i in range(n_sentences):
        w = [WORDS[k] for k in rng.choice(len(WORDS), size=9 + i % 5, replace=False)]
        lines.append(f"Line {i} says that " + " ".join(w) + f" number {i * 13 + seed}.")
    return "\n".join(lines)


def check_rule(ours, ref, prefix, rename, text, reason):
    assert drop_reasons(ours, [text]) == [reason]
    assert datatrove_reasons(ref, [text], prefix, rename) == [reason]


def test_prose_passes_every_rule():
    for ours, ref, prefix, rename in pairs():
        check_rule(ours, ref, prefix, rename, prose(), None)


@pytest.mark.parametrize("text,reason", [
    ("I am your father.\n" * 4, "gopher_rep.dup_line_frac"),
    ("para one is here.\n\npara one is here.\n\n" + prose(), "gopher_rep.dup_para_frac"),
    (prose(3) + "\n\n" + "x" * 300 + "\n\n" + "x" * 300 + "\n\nshort one\n\nshort two\n\nthree",
     "gopher_rep.dup_para_char_frac"),
    (prose(3) + "\n" + "y" * 300 + "\n" + "y" * 300 + "\nshort one\nshort two\nthree", "gopher_rep.dup_line_char_frac"),
    ("alpha beta " * 50, "gopher_rep.top_2_gram"),
    (" ".join([f"unique{i}" for i in range(200)] + "phrase0 phrase1 phrase2 phrase3 phrase4 phrase5 phrase6 "
              "phrase7 phrase8 phrase9 ".split() * 8), "gopher_rep.duplicated_5_n_grams"),
    ("", "gopher_rep.empty"),
])
def test_gopher_repetition_rules(text, reason):
    check_rule(GopherRepetitionFilter(), dt_filters.GopherRepetitionFilter(), "gopher_rep.", {}, text, reason)


@pytest.mark.parametrize("text,reason", [
    ("The cat and the dog.", "gopher_quality.short_doc"),
    (" ".join(["a b to of an"] * 30), "gopher_quality.below_avg_threshold"),
    (" ".join(["the and extraordinarily incomprehensibilities"] * 30), "gopher_quality.above_avg_threshold"),
    (prose() + " #tag" * 40, "gopher_quality.too_many_hashes"),
    (prose() + " wait..." * 40, "gopher_quality.too_many_ellipsis"),
    ("\n".join("- " + line for line in prose().split("\n")), "gopher_quality.too_many_bullets"),
    ("\n".join(line + "..." if i % 2 else line for i, line in enumerate(prose().split("\n"))),
     "gopher_quality.too_many_end_ellipsis"),
    (prose() + " 12345 67890" * 100, "gopher_quality.below_alpha_threshold"),
    (" ".join(f"word{i} lorem" for i in range(60)), "gopher_quality.few_stop_words"),
])
def test_gopher_quality_rules(text, reason):
    check_rule(GopherQualityFilter(), dt_filters.GopherQualityFilter(), "gopher_quality.", _gq_rename(), text, reason)


def test_gopher_quality_long_doc_is_configurable():
    ours, ref = GopherQualityFilter(max_doc_words=60), dt_filters.GopherQualityFilter(max_doc_words=60)
    check_rule(ours, ref, "gopher_quality.", _gq_rename(), prose(20), "gopher_quality.long_doc")


@pytest.mark.parametrize("text,reason", [
    (prose() + "\nLorem ipsum dolor sit amet, consectetur.", "c4.lorem_ipsum"),
    (prose() + "\nfunction f() { return the value; }", "c4.curly_bracket"),
    ("One sentence only here. And another one.\nshort", "c4.too_few_sentences"),
])
def test_c4_rules(text, reason):
    check_rule(C4Filter(), dt_filters.C4QualityFilter(filter_no_terminal_punct=False), "c4.", {}, text, reason)


def test_c4_removes_lines_not_pages():
    text = prose() + "\nPlease enable JavaScript to view this page.\nRead our privacy policy here.\nMenu\n[edit] "
    text += "Cited fact [12] stays here."
    out = C4Filter().process(docs([text]))
    new = out["text"][0].as_py()
    assert out["drop_reason"][0].as_py() is None
    assert "JavaScript" not in new and "privacy policy" not in new and "\nMenu" not in new
    assert new.endswith("Cited fact  stays here.")  # citations cut, the line kept


@pytest.mark.parametrize("text,reason", [
    ("\n".join(f"heading number {i} without a stop" for i in range(20)), "fineweb.line_punct_ratio"),
    (prose(3) + "\n" + "\n".join(f"Item {i}." for i in range(20)), "fineweb.short_line_ratio"),
    (prose(8) + "\n" + "This exact line is repeated many times on the page.\n" * 3, "fineweb.char_dup_ratio"),
    ("\n\n\n".join(f"Entry number {i} ends right here today." for i in range(30)), "fineweb.list_ratio"),
    ("   \n  ", "fineweb.empty"),
])
def test_fineweb_rules(text, reason):
    check_rule(FineWebQualityFilter(), dt_filters.FineWebQualityFilter(), "fineweb.", {}, text, reason)


def test_dropped_rows_are_kept_and_skipped():
    table = docs([prose(), "I am your father.\n" * 4])
    table = table.set_column(table.schema.get_field_index("drop_reason"), "drop_reason",
                             __import__("pyarrow").array(["ingest.earlier", None]))
    out = GopherRepetitionFilter().process(table)
    assert out.num_rows == 2
    assert out["drop_reason"].to_pylist() == ["ingest.earlier", "gopher_rep.dup_line_frac"]
    assert out["gopher_rep.dup_line_frac"][0].as_py() is None  # not computed for a row dropped before


def test_edge_cases_match_datatrove_and_empty_batches_pass():
    from tokenmill.schema import empty_documents

    texts = [" ", "\n\n", "a", "😀" * 10, "x", "\t\n\x0b", "word\u00a0word\u2028line", "[1] [edit]"]
    for ours, ref, prefix, rename in pairs():
        assert drop_reasons(ours, texts) == datatrove_reasons(ref, texts, prefix, rename), ours.name
        assert ours.process(empty_documents()).num_rows == 0
