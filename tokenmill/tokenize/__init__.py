"""Tokenizers, token-shard format, packing into training sequences, readers (local and remote), exports."""
