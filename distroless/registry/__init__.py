"""OCI distribution (registry v2) client and layout push."""
