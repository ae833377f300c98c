"""The signed-in web app: pages, the JSON API and metrics (the public routes are in
``public_endpoints``)."""
