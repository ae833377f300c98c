"""The benchmark: the project against a naive Celery baseline and the machine's SMTP ceiling."""
