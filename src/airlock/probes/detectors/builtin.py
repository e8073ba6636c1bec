"""Imports every built-in detector module so each registers itself."""
