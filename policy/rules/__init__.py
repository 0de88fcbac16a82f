"""The content rules, one module each; `policy/registry.py` lists them in order."""
