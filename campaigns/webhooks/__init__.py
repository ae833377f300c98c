"""Delivery events out: endpoints that subscribe to events, signing, retries and the outbox.

Events enter the outbox in ``campaigns.core.event_outbox``; ``workers.webhook_delivery`` POSTs
them. Nothing here speaks HTTP.
"""
