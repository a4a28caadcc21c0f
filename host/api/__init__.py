"""The HTTP front door: an OpenAI-compatible API over the LLM node and the RALM flows, /metrics, /health, /ready."""
