"""Accounts: users, projects, role bindings, API keys, service accounts, the principal (who is asking, in
which project, with which role) and authentication (``Authorization: Bearer <api key>``, then the session)."""
