"""Prices, cost, roll-ups and budgets: what each call cost and what a tenant may spend."""
