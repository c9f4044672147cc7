"""The `[signing]` config section: the node's own key."""

from __future__ import annotations

from pydantic import Field

from agent.core.settings import ConfigPath, Section


class SigningConfig(Section):
    """The node's own signing key; consumers trust its public half (`<key_file>.pub`)."""

    key_file: ConfigPath = Field(description="the node's Ed25519 private key (PEM, mode 0600)")
