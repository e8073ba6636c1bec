"""Red-team campaigns against live model endpoints (``airlock probe``)."""
