"""The HTTP server: semindex's API (and later its search page) over one index."""
