"""The protocol room: KServe v2 (OIP) + repository extension, OpenAI-compatible API, /metrics, CLI."""
