"""Carts: leads held for a buyer at a locked price for a limited time."""
