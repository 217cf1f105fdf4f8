"""Tools around the steps (not part of any step): a real HTTP server for tests and notebooks."""
