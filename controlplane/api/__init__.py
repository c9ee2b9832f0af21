"""API conventions shared by every app: errors, authentication, permissions, pagination, throttling."""
