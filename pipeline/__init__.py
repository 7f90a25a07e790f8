"""Video restoration pipeline: decode -> chunk -> restore -> encode, frame-exact."""
