"""A Sphinx extension of the book: the bibliography labelled "Author, year", as the citations in the text are.

pybtex's own labels are numbers ("plain") or letters that drop accents ("alpha": Grünwald 2007 became "Gru07");
this label style keeps the names as written: "Grünwald, 2007", "Hinton and van Camp, 1993",
"van Erven et al., 2012"; two works with the same label get "a", "b".
"""

from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle


def _surname(person) -> str:
    return " ".join([*person.prelast_names, *person.last_names])


def author_year(entry) -> str:
    """"Surname, year" for one author, "A and B, year" for two, "A et al., year" for more."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in people]
    who = (names[0] if len(names) == 1 else " and ".join(names) if len(names) == 2
           else f"{names[0]} et al." if names else entry.fields.get("title", entry.key))
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        labels = [author_year(e) for e in entries]
        repeated, seen = Counter(labels), Counter()
        for label in labels:
            if repeated[label] > 1:
                seen[label] += 1
                label += "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            yield label


class AuthorYearStyle(PlainStyle):
    default_label_style = AuthorYearLabels


def setup(app):
    register_plugin("pybtex.style.formatting", "authoryear", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
