"""The gateway: OpenAI-compatible server, accounts, keys, limits, enforcement, request log."""
