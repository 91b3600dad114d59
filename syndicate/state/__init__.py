"""The state database: posts' publication records, subscribers and the outbox, and status
queries.
"""
