"""flares core: everything that is not about one particular network."""
