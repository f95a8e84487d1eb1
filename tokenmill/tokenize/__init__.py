"""Tokenizers, token-shard format, packing into training sequences, readers (local and remote), exports.

    format.py     the shard format: names, dtypes, checksums (sha256 per shard, xxh3 per 1 MiB block)
    tokenizer.py  load any tokenizer.json; train a deterministic byte-level BPE on Parquet documents
    fastbpe.py    tiktoken's BPE core with HF-identical ids for byte-level BPE tokenizers (~4x faster encode)
    writer.py     ShardWriter (one shard, atomic) and write_token_dataset (a whole dataset, in-process)
    shards.py     TokenDataset: memmap locally, verified cached range reads over fsspec remotely
    remote.py     the block cache and range reads behind remote TokenDatasets
    packing.py    concat and best-fit-decreasing plans; PackedSequences (sequence i, its documents)
    pipeline.py   the `tokenize:` job section and its Ray phases (train → encode per file → finalize)
    export.py     datatrove (.ds/.ds.index) and Megatron (MMIDIDX .bin/.idx) exports
    httpserve.py  a loopback HTTP server with range requests, for tests and benchmarks
"""
