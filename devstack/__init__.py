"""The embedded development stack: PostgreSQL and the Temporal dev server as
child processes, so that a machine with only Python can run the product."""
