"""Bounces and complaints that arrive after sending: reading them, finding their job, and the
suppression policy. Pure of Celery and of network servers: the intakes in ``workers/`` (inbound
SMTP, IMAP/POP3 poller) and the provider webhooks hand messages and events to
:class:`campaigns.bounces.intake.BounceIntake`."""
