"""melange: build YAML recipes (schema, substitution, built-in pipelines, compilation)."""
