"""Hardening checks: firewall, SSH, listening ports, time sync, auditd, MAC, USB storage, encryption."""
