"""Process-wide plumbing: settings, logging, database access and event intake."""
