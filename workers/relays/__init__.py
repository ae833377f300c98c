"""The relays mail goes through: their config, failover, and the rates in force."""
