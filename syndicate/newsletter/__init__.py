"""The digest: which posts it holds, the email and archive page rendered from templates, the
message composed, subscriber CSVs and signed tokens.
"""
