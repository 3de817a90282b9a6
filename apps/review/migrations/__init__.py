"""Alembic migrations of the review database (run by :func:`npusuite.review.db.migrate`)."""
