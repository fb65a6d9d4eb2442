"""Marketplace search: agents find available leads and see them masked until bought."""
