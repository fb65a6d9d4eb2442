"""Plans, subscriptions, credit packs, invoices and payments (Stripe, or an operator's hand)."""
