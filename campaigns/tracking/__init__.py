"""Opens, clicks and unsubscribes: signed tokens, link rewriting, and what each records."""
