"""Export and import of a whole store as a documented, versioned dump (docs/dump-format.md)."""
