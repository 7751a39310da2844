"""sparsemix."""
