"""Setup-time helpers run by the Makefile (binary installation, sandbox image)."""
