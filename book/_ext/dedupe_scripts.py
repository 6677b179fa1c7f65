"""A Sphinx extension of the book: each script once per page.

sphinx-thebe adds its inline configuration (``const THEBE_JS_URL = ...``) each time Sphinx reads the
sources, and a second copy of a ``const`` declaration is a SyntaxError in every notebook page's console.
"""


def _unique_scripts(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for script in context.get("script_files", []):
        # The same inline script comes twice, once with filename None and once with "": the filename (None and
        # "" alike) and the attributes (a body included) say whether it is the same.
        fields = {} if isinstance(script, str) else vars(script)  # an old-style script is a plain str
        attributes = tuple(sorted((k, str(v)) for k, v in fields.get("attributes", {}).items()))
        key = (str(fields.get("filename", script) or ""), attributes)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    # In place: the list is the builder's own, to which extensions (MathJax) still add this page's scripts.
    context["script_files"][:] = kept


def setup(app):
    # Early: Sphinx stops this event at the first handler that returns a template name, so a late handler may
    # never run.
    app.connect("html-page-context", _unique_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
