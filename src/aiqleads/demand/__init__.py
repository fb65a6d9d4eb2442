"""Demand signals: what agents search, view and put in their carts."""
