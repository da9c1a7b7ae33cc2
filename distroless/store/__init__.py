"""The store: verified bytes kept by content (the cache) and packages expanded once (expand)."""
