"""Index tooling: vector datasets and readers, the IVF-PQ build (faiss), and index directories on disk."""
