"""The board's web side: the page and the JSON API (server), and the board that wires the verified feed, the fleet state and the server together."""
