"""Aliases: address syntax, the alias codec and its keys."""
