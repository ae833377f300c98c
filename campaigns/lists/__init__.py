"""Recipient lists: CSV import, merge fields, the suppression list, sample lists."""
