"""Reading district returns: bytes in, a typed table of unit rows with lineage out."""
