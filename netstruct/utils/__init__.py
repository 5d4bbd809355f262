"""Validation, randomness and testing helpers."""
