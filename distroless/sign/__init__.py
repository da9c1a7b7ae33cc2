"""cosign-compatible signing: key files, simple-signing payloads, DSSE attestations, .sig/.att attachments."""
