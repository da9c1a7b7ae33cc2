"""OCI images: deterministic layer compression, config/manifest/index JSON as ggcr writes it,
and the OCI-layout and docker-archive transports (a registry transport can reuse `image`)."""
