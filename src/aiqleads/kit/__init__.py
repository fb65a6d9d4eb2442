"""Shared plumbing used by every domain: database, dialect seam, errors, jobs, clock."""
