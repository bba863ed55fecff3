"""Reference solutions of the exercises, one module per lesson (see ``checks.show_solution``)."""
