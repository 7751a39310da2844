"""Demos: small scripts a user runs from the repository root as ``python -m demos.NAME``.

They import the library and are never imported by it; ``demos/_report.py`` holds what the DNA demos
share.
"""
