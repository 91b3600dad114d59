"""Publishing: planning the feeds from posts, writing RSS, Atom and JSON Feed, RFC 5005
archives, and recording what entered the feeds.
"""
