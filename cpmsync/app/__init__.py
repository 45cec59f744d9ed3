"""Reference apps on top of the daemon's MQTT contract: `cpmsync app web` (an inbox page)."""
