"""Plain data and pure helpers every capability shares: readings, schedules, config value types."""
