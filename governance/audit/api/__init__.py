"""The auditor's API: the chain, its verification and the access log, read and exported."""
