"""Compiled operators of the plugin (built by `pip install -e .`, see setup.py)."""
