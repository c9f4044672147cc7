"""The demo: a whole simulated plant, a broker, the agent and a verifying view on one machine (`edge-sim demo`)."""
