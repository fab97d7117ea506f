"""The index site's templates and labels, shipped as package data (exporter.site_templates)."""
