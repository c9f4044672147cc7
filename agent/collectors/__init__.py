"""Collectors: each module watches one thing and turns it into Readings.

Every collector has the same small shape (see `base.Collector`); the daemon schedules
them, the CLI's `collect` runs one once. A collector knows nothing of MQTT or signing.
"""
