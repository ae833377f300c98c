"""Inbound SMTP and mailboxes: bounce intake, the demo's capture server."""
