"""BuildKit front door: LLB graph builder and the gateway (LLBBridge) client a frontend image runs."""
