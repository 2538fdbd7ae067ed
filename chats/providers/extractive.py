"""The `extractive` AI provider: answers offline, without a model and without network.

1. text: for each search result, the full document from the local index when its URL is
   indexed (`chats.search.local.document_text`), else the result's snippet;
2. sentences: split per line and at sentence ends; keep those of 4 to 80 words;
3. rank: BM25 of each sentence against the question's content words (stop words dropped,
   light stemming), the sentences of all results forming the corpus;
4. cite: the result whose best two sentences score highest, discounted a little by its
   search rank; too little of the question covered -> "could not find";
5. compose: up to 3 of the cited result's best sentences, in document order, deduplicated;
   emitted in the tag format `chats.prompts` parses, and streamed word by word.

Token counts are word counts (there is no tokenizer without a model): input = words of
the question and of the text read, output = words of the answer.
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chats.prompts import NOT_FOUND
from chats.providers.base import AIProvider, Generation, GenerationRequest
from chats.search.base import SearchResult
from chats.search.local import document_text
from chats.search.text import content_words, stem

MAX_SENTENCES = 3
# Read at most this much of each document: answers sit near the top of a help page far
# more often than 100,000 characters down, and a batch answers thousands of questions.
MAX_DOCUMENT_CHARS = 100_000
MAX_ANSWER_WORDS = 110
MIN_SENTENCE_WORDS = 4
MAX_SENTENCE_WORDS = 80
# Share of the question's weight (IDF of its terms) that the answer must cover; below
# it the best match is a coincidence of one common word ("batch") and we say so instead.
MIN_COVERAGE = 0.34
RANK_DISCOUNT = 0.2
# Sentences below this share of the best one's score only dilute the answer.
KEEP_RATIO = 0.5
SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=[\"«(\[]?[A-ZÀ-ÖØ-Þ0-9])")


@dataclass(frozen=True)
class Sentence:
    source: int  # index of the search result
    position: int  # order within its document
    text: str
    terms: tuple[str, ...]


def split_sentences(text: str) -> list[str]:
    sentences: list[str] = []
    for line in text.splitlines():
        sentences.extend(part.strip() for part in SENTENCE_END.split(line) if part.strip())
    return sentences


def _is_candidate(sentence: str, *, title: str) -> bool:
    """A sentence worth quoting: not a heading (the title, or a short line without final
    punctuation), not a wall of text."""
    count = len(sentence.split())
    if not MIN_SENTENCE_WORDS <= count <= MAX_SENTENCE_WORDS:
        return False
    if sentence.strip().casefold() == title.strip().casefold():
        return False
    return count >= 8 or sentence.rstrip()[-1] in '.!?:;)…»"'


def terms_of(text: str) -> list[str]:
    return [stem(word) for word in content_words(text)]


class BM25:
    """Okapi BM25 over a small in-memory corpus of term lists."""

    def __init__(self, documents: Sequence[Sequence[str]], *, k1: float = 1.2, b: float = 0.75):
        self.k1, self.b = k1, b
        self.counts = [Counter(doc) for doc in documents]
        self.lengths = [len(doc) for doc in documents]
        self.average = (sum(self.lengths) / len(documents)) if documents else 0.0
        frequency: Counter[str] = Counter()
        for counts in self.counts:
            frequency.update(counts.keys())
        total = len(documents)
        self.idf = {
            term: math.log(1 + (total - df + 0.5) / (df + 0.5)) for term, df in frequency.items()
        }

    def term_idf(self, term: str) -> float:
        # A query term found in no sentence still weighs in the coverage (it is unanswered).
        return self.idf.get(term, math.log(1 + (len(self.counts) + 0.5) / 0.5))

    def score(self, query: Sequence[str], index: int) -> float:
        counts, length = self.counts[index], self.lengths[index]
        norm = self.k1 * (1 - self.b + self.b * length / (self.average or 1))
        total = 0.0
        for term in set(query):
            tf = counts.get(term, 0)
            if tf:
                total += self.idf[term] * tf * (self.k1 + 1) / (tf + norm)
        return total


@dataclass(frozen=True)
class ExtractiveAnswer:
    text: str
    result: SearchResult | None  # the cited result; None when nothing relevant was found
    words_read: int


def _source_texts(results: Sequence[SearchResult]) -> list[str]:
    texts = []
    for result in results:
        full = document_text(result.url)
        text = full if full else result.snippet.replace("…", " ")
        texts.append(text[:MAX_DOCUMENT_CHARS])
    return texts


def compose_answer(
    *, question: str, results: Sequence[SearchResult], language: str
) -> ExtractiveAnswer:
    """The answer text and the cited result (see the module docstring for the steps)."""
    not_found = NOT_FOUND.get(language, NOT_FOUND["en"])
    query = list(dict.fromkeys(terms_of(question)))
    texts = _source_texts(results)
    words_read = sum(len(text.split()) for text in texts)
    sentences = [
        Sentence(source=i, position=p, text=s, terms=tuple(terms_of(s)))
        for i, text in enumerate(texts)
        for p, s in enumerate(split_sentences(text))
        if _is_candidate(s, title=results[i].title)
    ]
    if not query or not sentences:
        return ExtractiveAnswer(not_found, None, words_read)

    bm25 = BM25([s.terms for s in sentences])
    scores = [bm25.score(query, i) for i in range(len(sentences))]
    by_source: dict[int, list[int]] = {}
    for i in sorted(range(len(sentences)), key=lambda i: -scores[i]):
        if scores[i] > 0:
            by_source.setdefault(sentences[i].source, []).append(i)
    if not by_source:
        return ExtractiveAnswer(not_found, None, words_read)

    def source_score(source: int) -> tuple[float, int]:
        # The search engine ranked whole documents (title included): its order is a
        # useful prior when two documents have equally good sentences.
        best_two = sum(scores[i] for i in by_source[source][:2])
        return best_two / (1 + RANK_DISCOUNT * source), -source

    cited = max(by_source, key=source_score)
    ranked = by_source[cited]
    best = scores[ranked[0]]
    chosen: list[int] = []
    seen: set[str] = set()
    words = 0
    for i in ranked:
        if len(chosen) == MAX_SENTENCES or scores[i] < KEEP_RATIO * best:
            break
        key = " ".join(sentences[i].terms)
        length = len(sentences[i].text.split())
        if key in seen or (chosen and words + length > MAX_ANSWER_WORDS):
            continue
        seen.add(key)
        chosen.append(i)
        words += length

    covered = {t for i in chosen for t in sentences[i].terms} & set(query)
    weight = sum(bm25.term_idf(t) for t in query)
    coverage = sum(bm25.term_idf(t) for t in covered) / weight if weight else 0.0
    if coverage < MIN_COVERAGE:
        return ExtractiveAnswer(not_found, None, words_read)

    chosen.sort(key=lambda i: sentences[i].position)
    text = " ".join(sentences[i].text for i in chosen)
    return ExtractiveAnswer(text, results[cited], words_read)


def format_reply(answer: ExtractiveAnswer) -> str:
    """The tag format of `chats.prompts` (it unescapes the citation tags' HTML entities)."""
    reply = f"<answer>{answer.text}</answer>"
    if answer.result is not None:
        reply += (
            f"\n<citation-url>{html.escape(answer.result.url, quote=False)}</citation-url>"
            f"\n<citation-title>{html.escape(answer.result.title, quote=False)}</citation-title>"
        )
    return reply


class ExtractiveProvider(AIProvider):
    key = "extractive"
    label = "Extractive (offline, no AI model)"
    uses_language_model = False

    def missing_setting(self) -> str | None:
        return None

    def models(self) -> list[str]:
        return ["extractive"]

    def generate(
        self, request: GenerationRequest, *, on_token: Callable[[str], None] | None = None
    ) -> Generation:
        answer = compose_answer(
            question=request.question, results=request.search_results, language=request.language
        )
        text = format_reply(answer)
        if on_token is not None:
            # Word by word, whitespace kept: the pieces join back to exactly `text`.
            for piece in re.findall(r"\S+\s*", text):
                on_token(piece)
        return Generation(
            text=text,
            model="extractive",
            input_tokens=len(request.question.split()) + answer.words_read,
            output_tokens=len(answer.text.split()),
        )
