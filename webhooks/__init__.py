"""FastAPI service that turns what leads do into journey events."""
