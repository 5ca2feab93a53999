"""Teacher environments: how student feedback becomes a state, and policies that act on it."""
