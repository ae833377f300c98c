"""How mail is sent: Celery app, delivery, SMTP connections."""
