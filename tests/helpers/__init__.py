"""Helpers shared by several test modules: paths and tools of the repository, reference
implementations and small models. Fixtures live in the `conftest.py` files."""
