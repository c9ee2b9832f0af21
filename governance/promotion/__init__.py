"""Promotion: environments, policies and their versions, the gates they name (``gates``), exceptions,
promotion requests and their decisions, separation of duties and the risk tier's confirmation, deployments,
and the enforcement point that deployment systems ask (``deployment_verify``)."""
