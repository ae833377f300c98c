"""One-to-one mail (verification codes, resets, receipts) beside campaigns.

Each message is a job of a per-category system campaign (a *stream*), so it goes through the
same claims, transmit marks, retries, relays, limits, DKIM, VERP return path and bounce
handling as campaign mail; what it says is stored beside its job (``TransactionalMessage``).
"""
