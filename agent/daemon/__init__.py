"""The daemon: wiring (service), each collector on its grid (collecting), sealing (sealer),
the runtime status file `edge-agent status` reads (runtime), and systemd's notify protocol."""
