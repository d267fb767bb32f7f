"""The ledger: SQLAlchemy models, Alembic migrations and the only SQL in Doudi (issue 3 builds the service
on it). Every settlement and reversal appends entries; nothing is updated in place or deleted, and a
person's year-to-date figures are sums over the entries."""
