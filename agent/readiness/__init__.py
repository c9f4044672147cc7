"""Readiness: what operations and security agreed (policy) and the verdict judged against it (model, pure)."""
