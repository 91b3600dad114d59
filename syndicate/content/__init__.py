"""Reading posts: finding the files, front matter and its dialects, Markdown, the per-post
cache, and `check`'s lint.
"""
