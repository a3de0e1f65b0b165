"""dockerfile stage."""
