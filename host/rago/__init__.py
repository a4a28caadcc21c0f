"""RAGO: a RAG pipeline schema, a performance model calibrated on anole's own components, and an
optimizer over placement, allocation and batching (docs/rago.md)."""
