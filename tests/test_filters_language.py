"""Language ID (fastText lid.176 on the whole text): agreement with Common Crawl's own labels, rules, model checks."""

from __future__ import annotations

import json

import pytest
from filters_helpers import docs, drop_reasons, wet_records

from tokenmill.config import ConfigError
from tokenmill.filters.language import LanguageFilter

ISO3_TO_1 = {"eng": "en", "spa": "es", "deu": "de", "fra": "fr", "rus": "ru", "zho": "zh", "jpn": "ja",
             "por": "pt", "ita": "it", "nld": "nl", "swe": "sv", "tgk": "tg", "pol": "pl", "ces": "cs"}

EN = ("The committee published its annual report on Monday, describing how the new rail line will connect "
      "the northern suburbs with the city centre and reduce travel times for thousands of commuters.")
DE = ("Der Ausschuss hat am Montag seinen Jahresbericht veröffentlicht und beschreibt darin, wie die neue "
      "Bahnlinie die nördlichen Vororte mit der Innenstadt verbinden und die Fahrzeiten verkürzen soll.")


def cc_labelled_pages(data) -> list[tuple[str, str, str]]:
    """(url, CC's language, text): WET records with WARC-Identified-Content-Language, and WARC responses with
    the `languages-cld2` line of their metadata record (the same CLD2 result CC writes into WET headers)."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    rows = [(u, ISO3_TO_1.get(lang.split(",")[0], lang), t) for u, lang, t in wet_records(data) if lang]
    pages: dict[str, dict] = {}
    for path in sorted(data.glob("commoncrawl/**/*.warc.gz")):
        with open(path, "rb") as f:
            for r in ArchiveIterator(f, record_types=WarcRecordType.response | WarcRecordType.metadata):
                body, page = r.reader.read(), pages.setdefault(r.headers.get("WARC-Target-URI"), {})
                if r.record_type == WarcRecordType.metadata:
                    for line in body.decode("utf-8", "replace").splitlines():
                        if line.startswith("languages-cld2:"):
                            langs = json.loads(line.split(":", 1)[1]).get("languages") or [{}]
                            page["lang"] = langs[0].get("code", "").split("-")[0]
                else:
                    page["text"] = extract_plain_text(bytes_to_str(body, detect_encoding(body)), main_content=True)
    rows += [(u, p["lang"], p["text"]) for u, p in pages.items() if p.get("lang") and p.get("text")]
    return rows


def test_agrees_with_common_crawl_language_labels(shared_data):
    rows = cc_labelled_pages(shared_data)
    assert len(rows) >= 15
    out = LanguageFilter(languages=[]).process(docs([t for _, _, t in rows]))
    ours = out["language"].to_pylist()
    agree = sum(o == cc for o, (_, cc, _) in zip(ours, rows, strict=True)) / len(rows)
    diffs = [(u, cc, o) for o, (u, cc, _) in zip(ours, rows, strict=True) if o != cc]
    print(f"language ID vs CC labels: {agree:.1%} of {len(rows)} pages agree; differences: {diffs}")
    assert agree >= 0.9


def test_columns_and_keep_list():
    out = LanguageFilter().process(docs([EN, DE]))
    assert out["language"].to_pylist() == ["en", "de"]
    assert out["language_score"][0].as_py() > 0.65
    assert out["drop_reason"].to_pylist() == [None, "lang.other_language"]


def test_whole_text_not_first_80_chars():
    text = EN[:90] + "\n" + " ".join([DE] * 5)
    assert LanguageFilter(languages=[]).process(docs([text]))["language"][0].as_py() == "de"


def test_below_threshold():
    assert drop_reasons(LanguageFilter(), ["12345 67890"]) == ["lang.below_threshold"]  # en, p=0.12
    assert drop_reasons(LanguageFilter(min_score=0.999), [EN]) == ["lang.below_threshold"]


def test_per_language_thresholds_and_empty_keep_list():
    stage = LanguageFilter(languages=["en", "de"], thresholds={"de": 0.9999})
    assert drop_reasons(stage, [EN, DE]) == [None, "lang.below_threshold"]
    assert drop_reasons(LanguageFilter(languages=[]), [EN, DE]) == [None, None]


def test_missing_or_corrupt_model_fails_check_naming_the_file(tmp_path):
    missing = tmp_path / "lid.bin"
    with pytest.raises(ConfigError, match=str(missing)):
        LanguageFilter(model_path=str(missing)).check()
    corrupt = tmp_path / "corrupt.ftz"
    corrupt.write_bytes(b"not a fasttext model" * 100)
    with pytest.raises(ConfigError, match=str(corrupt)):
        LanguageFilter(model_path=str(corrupt)).check()
    LanguageFilter().check()  # the bundled model loads
