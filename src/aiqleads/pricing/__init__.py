"""Dynamic pricing: every lead's price from quality, demand, supply, freshness, exclusivity
and the buyer's plan, with its explanation."""
