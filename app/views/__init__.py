"""HTTP endpoints, one blueprint per area."""
