"""The consumer side: subscribe and verify (subscription), the fleet's state and the board that wires them."""
