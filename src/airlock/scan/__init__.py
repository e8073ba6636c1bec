"""Static audit of model files. Nothing here executes what it reads."""
