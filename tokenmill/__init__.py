"""tokenmill: Common Crawl → clean documents → token shards → a DeepSeek-V3-style model → back to the documents."""

__version__ = "0.1.0"
