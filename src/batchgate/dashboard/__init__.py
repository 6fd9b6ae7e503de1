"""The dashboard at /ui: static HTML, CSS and ES modules that talk to the public API from the browser."""
