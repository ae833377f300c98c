"""How people drive and watch the sender over HTTP: tracking endpoints (open, click, one-click
unsubscribe) now, the web dashboard beside them later."""
