"""Edge readiness agent: host health, patch posture and Modbus telemetry, signed, over MQTT."""

__version__ = "0.1.0"
