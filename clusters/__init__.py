"""clusters package."""
