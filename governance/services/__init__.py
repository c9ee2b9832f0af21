"""Services: the functions that change governed state, each in one transaction (STYLE.md)."""
