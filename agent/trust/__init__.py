"""Trust: the signed envelope (pure), node keys and trust stores, key rotation, verification and replay."""
