"""Build chats/guard/data/first_names.txt from the `names-dataset` package (3.3.1).

Run once by hand when the list should change (the guard itself reads only the text file,
so nothing is installed, downloaded or unpickled at run time):

    .venv/bin/pip install names-dataset==3.3.1   # ~55 MB, not a runtime dependency
    .venv/bin/python bin/guard_names_from_dataset.py

Why a derived file: names-dataset (Philippe Remy, Apache-2.0; first names of 105
countries from a public social-network leak, ranked per country) takes about 4 s and
900 MB of memory to load its first names alone, too much for every worker process. A
name is kept when it ranks in the first RANK names of any country (Arabic, South Asian,
Chinese, Vietnamese, African, European and American names alike), has two to fifteen
letters and is not a common English or French word: a word the project's own English and
French text (docs/, sample/docs/, the French catalogue) writes in lower case, or one of
chats/guard/data/not_first_name.txt.
"""

from __future__ import annotations

import datetime
import gzip
import importlib.util
import pickle
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "chats" / "guard" / "data" / "first_names.txt"
RANK = 1500
LETTERS = re.compile(r"[^\W\d_]{2,15}(?:-[^\W\d_]{2,15})?")


def _common_words() -> set[str]:
    words: set[str] = set()
    paths = [*ROOT.glob("docs/*.md"), *ROOT.glob("sample/docs/**/*.md"), ROOT / "README.md"]
    paths += [*ROOT.glob("locale/fr/LC_MESSAGES/*.po"), *ROOT.glob("sample/*.csv")]
    for path in paths:
        words.update(re.findall(r"\b[a-zà-ÿ]{2,}\b", path.read_text(encoding="utf-8")))
    data = ROOT / "chats" / "guard" / "data" / "not_first_name.txt"
    for line in data.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            words.add(line.strip().lower())
    return words


def main() -> int:
    spec = importlib.util.find_spec("names_dataset")  # its data, without importing it
    pickled = Path(spec.origin).parent / "v3" / "first_names.pkl.gz"
    with gzip.open(pickled) as handle:
        first_names = pickle.load(handle)  # noqa: S301 (the package's own data)
    common = _common_words()
    kept = sorted(
        name.lower()
        for name, info in first_names.items()
        if LETTERS.fullmatch(name)
        and min((info.get("rank") or {}).values(), default=RANK + 1) <= RANK
        and name.lower() not in common
    )
    kept = sorted(set(kept))
    header = (
        "# First names of many languages (Arabic, South Asian, Chinese and Vietnamese "
        "transliterations, African, European, American), lower case, one a line.\n"
        f"# Source: names-dataset 3.3.1 (PyPI, Philippe Remy, Apache-2.0), names ranked in "
        f"the first {RANK} of any of its 105 countries, less common English and French "
        "words; built by bin/guard_names_from_dataset.py on "
        f"{datetime.date.today().isoformat()}.\n"
    )
    OUT.write_text(header + "\n".join(kept) + "\n", encoding="utf-8")
    print(f"{len(kept)} names -> {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
