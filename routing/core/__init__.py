"""The routing core: pure Python + numpy + torch. No Django, no database, no network."""
