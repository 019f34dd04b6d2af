"""Households and village enterprises: the suppliers whose income the shop exists for."""
