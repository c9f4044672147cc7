"""Trust: canonical JSON and the signed envelope (pure), node keys and trust stores, key rotation,
verification and the replay guard."""
