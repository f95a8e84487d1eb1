"""BM25 relevance of retrieved documents to a model output, with token ids as terms (OLMoTrace's ranking).

The candidate documents are the corpus (their document frequencies give the idf), the output's distinct token
ids are the query. One term-frequency matrix (documents × query terms) built by a single bincount over the
concatenated documents; 200 documents of 2,000 tokens score in ~3 ms here.
"""

from __future__ import annotations

import numpy as np

K1 = 1.2  # term-frequency saturation; the usual default (Robertson & Zaragoza 2009, "The Probabilistic
B = 0.75  # Relevance Framework: BM25 and Beyond", §3.4), also rank_bm25's and Lucene's


def bm25_scores(query_ids: np.ndarray, docs: list[np.ndarray], k1: float = K1, b: float = B) -> np.ndarray:
    """BM25 score of each document (a token-id array) for the query's distinct token ids; shape (D,)."""
    D = len(docs)
    if D == 0:
        return np.zeros(0)
    terms_Q = np.unique(np.asarray(query_ids, np.int64))
    Q = terms_Q.size
    lengths_D = np.array([len(d) for d in docs], np.int64)
    if Q == 0 or lengths_D.sum() == 0:
        return np.zeros(D)
    flat = np.concatenate([np.asarray(d, np.int64) for d in docs])
    doc_of_token = np.repeat(np.arange(D), lengths_D)
    col = np.searchsorted(terms_Q, flat)
    hit = (col < Q) & (terms_Q[np.minimum(col, Q - 1)] == flat)
    tf_DQ = np.bincount(doc_of_token[hit] * Q + col[hit], minlength=D * Q).reshape(D, Q).astype(np.float64)
    df_Q = (tf_DQ > 0).sum(axis=0)
    idf_Q = np.log1p((D - df_Q + 0.5) / (df_Q + 0.5))
    norm_D = k1 * (1 - b + b * lengths_D / max(lengths_D.mean(), 1.0))
    return ((tf_DQ * (k1 + 1)) / (tf_DQ + norm_D[:, None]) * idf_Q).sum(axis=1)
