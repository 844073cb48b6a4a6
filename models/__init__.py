"""Data shapes. Pure modules here are safe to import from workflow code; `tables`
is not (it pulls in SQLModel)."""
