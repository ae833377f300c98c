"""Campaigns: create, check, schedule, pause, resume, cancel, failures and retries."""
