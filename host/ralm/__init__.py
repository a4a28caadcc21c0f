"""Retrieval-augmented LMs through the disaggregated system: type 1 (chunks) and type 2 (kNN-LM)."""
