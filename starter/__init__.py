"""Command line: start cohorts, send an event, validate journeys."""
