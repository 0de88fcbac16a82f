"""Marketplace Relay: buyers and sellers write to each other through aliases."""
