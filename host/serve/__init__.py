"""Retrieval servers: memory nodes (one shard behind a scan backend), the coordinator (coarse search,
fan-out, merge, batching) and its server, and the retrieval messages they exchange (`wire`)."""
