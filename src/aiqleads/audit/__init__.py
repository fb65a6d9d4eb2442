"""The audit log: who changed what that matters (prices, money, exclusivity), and when."""
