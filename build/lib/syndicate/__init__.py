"""syndicate: a self-hosted publisher for Markdown blogs (feeds and email digests)."""

__version__ = "0.1.0"
