"""HTTP side of the review app: pages (server-rendered Jinja2), JSON APIs and ingest."""
