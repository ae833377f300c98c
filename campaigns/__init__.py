"""What is sent: recipient lists, templates, messages, campaigns and their jobs.

This package is the domain core. It never imports Celery: delivery lives in ``workers``.
"""
