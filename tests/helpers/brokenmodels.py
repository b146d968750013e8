"""A user's model module whose own code fails as it is imported (karuku must name it in one line)."""

WIDTH = int("sixteen")  # the user's bug: ValueError at import time
