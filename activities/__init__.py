"""Activities: every side effect of a journey (database, email, sales)."""
