"""Entry points: the edm command line and the demo. Nothing else imports this package."""
