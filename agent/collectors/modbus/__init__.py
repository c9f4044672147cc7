"""Read-only Modbus: config models, register codec, request planner, poller, transports."""
