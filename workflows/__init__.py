"""The journey workflow and the pure journey and scoring logic it interprets.

Nothing here does I/O: everything that touches the world is an activity.
"""
