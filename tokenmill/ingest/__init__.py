"""Common Crawl sources: path lists, WARC/WET/WAT records, HTML → text, charset handling."""
