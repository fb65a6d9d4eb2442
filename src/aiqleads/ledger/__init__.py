"""The credits ledger: double-entry accounts, immutable entries, balances never negative."""
