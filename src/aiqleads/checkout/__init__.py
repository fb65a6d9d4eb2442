"""Checkout: what each buyer has bought."""
