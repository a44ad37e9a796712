"""Authentication and authorisation: passwords, tokens, API keys, roles, rate limits."""
