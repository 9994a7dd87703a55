"""Execution engines besides the hook core (nnsight for generation and remote runs)."""
