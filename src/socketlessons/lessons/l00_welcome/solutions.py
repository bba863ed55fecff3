"""Reference solutions of lesson 00: none, it has no exercise (``show_solution`` looks in every lesson)."""
