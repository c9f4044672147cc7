"""PLC simulators with data-defined profiles and fault injection, for tests, benchmarks and the demo."""
