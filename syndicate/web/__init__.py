"""`syndicate serve`: the HTTP app (feeds, archive, subscribe, confirm, unsubscribe) and its
guards.
"""
