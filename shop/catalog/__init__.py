"""Products, categories, pickup points and the public catalog."""
