"""HTTP only: the app factory, auth, and one module per resource, in two dialects (MKA1 and OpenAI)."""
