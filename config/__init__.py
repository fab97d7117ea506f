"""Example configurations, shipped as package data (exporter.config_files): demo.toml is
the embedded default of `ess-export run` and `plan`."""
