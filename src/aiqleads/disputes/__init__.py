"""Disputes: a buyer says a purchased lead is bad; evidence is checked, clear cases refunded."""
