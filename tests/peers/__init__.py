"""Real peers for the tests: peers.sh starts them, env.py reads their state."""
