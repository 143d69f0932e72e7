"""homelab: converge a home lab as a Nix-style build graph."""
