"""What a message says and how it is built: templates, rendering, CSS, message bytes, DKIM."""
