"""Files copied into agent packs by `edgefl pack` (install script, systemd unit, first-start build)."""
