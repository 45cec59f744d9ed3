"""The `cpmsync demo` first-run experience."""
