"""The Jupyter Book: building its HTML from the executed notebooks and the pages in ``book/``,
and checking the built book."""
