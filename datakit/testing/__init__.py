"""Controlled generators for validating the audit: generated sets with known defects."""
