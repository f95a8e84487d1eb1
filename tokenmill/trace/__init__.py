"""Provenance: step → documents, span index (suffix arrays), resemblance search, web view."""
