"""The soak test: many guests, many minutes, random valid and invalid traffic, no leaks.

Run ``python -m soak`` (or ``scripts/soak``); see :mod:`soak.__main__` and docs/reliability.md.
"""
