"""Delivery: the store-and-forward spool, the MQTT publisher, and the run's identity (session, sequence)."""
