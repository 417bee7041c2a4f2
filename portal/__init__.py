"""The public verification portal and the JSON API (aiohttp + jinja2)."""
