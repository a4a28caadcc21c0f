"""Index tooling: vector datasets and sources (.npy/.fvecs/.bvecs/.hdf5/synthetic), the IVF-PQ build (faiss;
in memory or out of core), faiss import, query pre-transforms, and index directories on disk."""
