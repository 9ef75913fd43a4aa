"""The migrations, oldest first by their ``down_revision`` chain (a package so that it ships)."""
