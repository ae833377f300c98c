"""What the internet reaches without signing in: tracking, unsubscribe, provider webhooks."""
