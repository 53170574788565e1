"""Verification at push: registry events → the same policies as admission → verdicts in the store (which
admission reuses) and findings for failures."""
