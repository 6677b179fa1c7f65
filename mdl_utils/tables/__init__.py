"""The book's tables: one renderer (:mod:`.render`), Tables 1 and 2 of the paper (:mod:`.paper`), and each
chapter's tables and sentences (:mod:`.model_codes`: chapters 1-5 and 8; :mod:`.prequential`: 6 and 7;
:mod:`.bytes`: 9; :mod:`.networks`: the networks table). The notebooks call them as ``tables.<name>``; the number formats are :mod:`mdl_utils.formats`.
"""

from ..formats import bits, kbits, markdown, percent, ratio  # noqa: F401
from .bytes import *  # noqa: F401,F403
from .model_codes import *  # noqa: F401,F403
from .paper import *  # noqa: F401,F403
from .networks import *  # noqa: F401,F403
from .prequential import *  # noqa: F401,F403
from .render import *  # noqa: F401,F403
from .verdict import *  # noqa: F401,F403
