"""The codes of the book, one module each (paper Sec. 2-3, App. A-E)."""
