"""AIQLeads: a lead marketplace."""
