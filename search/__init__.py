"""semindex read side: open an index and search it by meaning.

from search import Index
index = Index.open("papers/.semindex")
for hit in index.search("effects of sleep on memory", k=5):
    print(hit.score, hit.path, hit.start_line, hit.text)
"""

from search.index import Index, find_index
from search.results import SearchResult

__all__ = ["Index", "SearchResult", "find_index"]
