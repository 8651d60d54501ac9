"""Statistics and figures of a corruption study."""
