"""SMTP client side: the relay URL, pooled connections, the pipelined command channel."""
