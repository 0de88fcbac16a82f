"""Proof of who sent a message: SPF, DKIM and DMARC at DATA (see `check`)."""
