"""Patch status: pending and security updates (apt, dnf), index freshness, reboot state."""
