"""Service side of glance-clone: persistence, runners, jobboard, API, CLIs.

It imports the domain (``clone_flows``); the domain never imports it.
"""
