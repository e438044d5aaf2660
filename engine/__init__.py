"""mamoru engine: the outbound mail transfer agent."""
