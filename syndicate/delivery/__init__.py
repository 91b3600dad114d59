"""Getting digests to readers: queueing the outbox, the forked sender, and the SMTP or file
transport.
"""
