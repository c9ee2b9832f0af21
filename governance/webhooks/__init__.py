"""Webhooks: a project's subscriptions to its audit events, their signed deliveries (``delivery``: the worker,
the signature and the guard that refuses private targets), tests and redeliveries. Audit tells it of each
event through its listener registry; audit never imports it."""
