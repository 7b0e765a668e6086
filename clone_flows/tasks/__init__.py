"""The clone graph's atoms: one task per module."""
